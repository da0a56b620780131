cb_add_test(test_tiny_data LABELS integration SOURCES datasets/test_tiny_data.cpp LIBS cb_datasets)
