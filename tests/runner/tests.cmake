# Runner: checkpoints, exact resume.
cb_add_test(test_runner LABELS unit SOURCES runner/test_runner.cpp LIBS cb_runners)
