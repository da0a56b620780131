cb_add_test(test_lr_schedule LABELS golden unit SOURCES runners/test_lr_schedule.cpp LIBS cb_runners)
cb_add_test(test_grad_checkpoint LABELS unit SOURCES runners/test_grad_checkpoint.cpp LIBS cb_models)
