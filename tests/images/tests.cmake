cb_add_test(test_images_golden LABELS golden SOURCES images/test_images_golden.cpp LIBS cb_datasets)
