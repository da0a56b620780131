cb_add_test(test_llama LABELS golden SOURCES llama/test_llama.cpp LIBS cb_models)
