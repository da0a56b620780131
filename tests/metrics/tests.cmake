cb_add_test(test_text_processors LABELS golden unit SOURCES metrics/test_text_processors.cpp LIBS cb_datasets)
cb_add_test(test_cider LABELS golden unit SOURCES metrics/test_cider.cpp LIBS cb_framework)
cb_add_test(test_image_eval_processor LABELS golden unit SOURCES metrics/test_image_eval_processor.cpp LIBS cb_datasets)
