cb_add_test(test_builders LABELS unit SOURCES datasets/builders/test_builders.cpp support/make_media.cpp datasets/webdataset/write_tar.cpp LIBS cb_datasets)
cb_add_test(test_tiny_eval_data LABELS integration SOURCES datasets/builders/test_tiny_eval.cpp LIBS cb_models cb_datasets)
