cb_add_test(test_valor_data LABELS unit SOURCES datasets/valor/test_valor_data.cpp support/make_media.cpp
             datasets/webdataset/write_tar.cpp LIBS cb_datasets)
