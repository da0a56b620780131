cb_add_test(test_images_golden LABELS golden SOURCES datasets/processors/test_images_golden.cpp LIBS cb_datasets)
cb_add_test(test_image_train LABELS unit SOURCES datasets/processors/test_image_train.cpp LIBS cb_datasets)
cb_add_test(test_text_processors LABELS golden unit SOURCES datasets/processors/test_text_processors.cpp LIBS cb_datasets)
cb_add_test(test_image_eval_processor LABELS golden unit SOURCES datasets/processors/test_image_eval_processor.cpp LIBS cb_datasets)
cb_add_test(test_alpro_video_train LABELS unit SOURCES datasets/processors/test_alpro_video_train.cpp support/make_media.cpp
            support/process_util.cpp support/torch_peer.cpp LIBS cb_datasets)
