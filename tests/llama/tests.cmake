cb_add_test(test_llama LABELS golden SOURCES llama/test_llama.cpp LIBS cb_models)
cb_add_test(test_llama_generation LABELS unit SOURCES llama/test_generation.cpp LIBS cb_models)
cb_add_test(test_llama_hf LABELS unit SOURCES llama/test_llama_hf.cpp LIBS cb_models)
