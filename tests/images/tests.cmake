cb_add_test(test_images_golden LABELS golden SOURCES images/test_images_golden.cpp LIBS cb_datasets)
cb_add_test(test_media_decode LABELS unit SOURCES images/test_media_decode.cpp images/make_media.cpp LIBS cb_datasets)
cb_add_test(test_image_train LABELS unit SOURCES images/test_image_train.cpp LIBS cb_datasets)
