cb_add_test(test_lr_schedule LABELS golden unit SOURCES runners/test_lr_schedule.cpp LIBS cb_runners)
