cb_add_test(test_device_prefetch LABELS unit SOURCES framework/test_device_prefetch.cpp)
cb_add_test(test_activation_checkpoint LABELS unit SOURCES framework/test_activation_checkpoint.cpp LIBS cb_models)
cb_add_test(test_crash_report LABELS unit SOURCES framework/test_crash_report.cpp)
cb_add_test(test_json_records LABELS unit SOURCES framework/test_json_records.cpp support/make_media.cpp LIBS cb_datasets)
