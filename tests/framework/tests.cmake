cb_add_test(test_safetensors LABELS unit SOURCES framework/test_safetensors.cpp)
cb_add_test(test_device_prefetch LABELS unit SOURCES framework/test_device_prefetch.cpp)
