cb_add_test(test_chatbridge_golden LABELS golden SOURCES chatbridge/test_chatbridge_golden.cpp LIBS cb_models)
cb_add_test(test_train_trajectory LABELS golden SOURCES chatbridge/test_train_trajectory.cpp LIBS cb_runners)
cb_add_test(test_chatbridge LABELS unit SOURCES chatbridge/test_chatbridge.cpp LIBS cb_models)
