cb_add_test(test_caption_metrics LABELS unit SOURCES eval/test_caption_metrics.cpp LIBS cb_framework)
