cb_add_test(test_valor_data LABELS unit SOURCES data/test_valor_data.cpp images/make_media.cpp LIBS cb_datasets)
cb_add_test(test_webdataset LABELS unit SOURCES data/test_webdataset.cpp LIBS cb_datasets)
cb_add_test(test_tiny_data LABELS integration SOURCES data/test_tiny_data.cpp LIBS cb_datasets)
cb_add_test(test_lm_corpus LABELS unit SOURCES data/test_lm_corpus.cpp images/make_media.cpp LIBS cb_datasets)
