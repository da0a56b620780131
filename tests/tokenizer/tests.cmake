cb_add_test(test_tokenizer_golden LABELS golden SOURCES tokenizer/test_tokenizer_golden.cpp LIBS cb_models)
cb_add_test(test_tokenizer LABELS unit SOURCES tokenizer/test_tokenizer.cpp LIBS cb_models)
