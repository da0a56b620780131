cb_add_test(test_builders LABELS unit SOURCES builders/test_builders.cpp images/make_media.cpp LIBS cb_datasets)
