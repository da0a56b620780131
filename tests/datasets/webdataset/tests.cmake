cb_add_test(test_webdataset LABELS unit SOURCES datasets/webdataset/test_webdataset.cpp LIBS cb_datasets)
