cb_add_test(test_webdataset LABELS unit SOURCES datasets/webdataset/test_webdataset.cpp datasets/webdataset/write_tar.cpp LIBS cb_datasets)
