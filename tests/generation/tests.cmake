cb_add_test(test_beam_search LABELS unit SOURCES generation/test_beam_search.cpp LIBS cb_models)
