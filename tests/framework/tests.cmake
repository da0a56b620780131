cb_add_test(test_safetensors LABELS unit SOURCES framework/test_safetensors.cpp)
