cb_add_test(test_lm_corpus LABELS unit SOURCES datasets/text/test_lm_corpus.cpp support/make_media.cpp LIBS cb_datasets)
