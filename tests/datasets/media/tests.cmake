cb_add_test(test_media_decode LABELS unit SOURCES datasets/media/test_media_decode.cpp support/make_media.cpp LIBS cb_datasets)
