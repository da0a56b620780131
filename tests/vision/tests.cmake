cb_add_test(test_eva_vit LABELS golden SOURCES vision/test_eva_vit.cpp LIBS cb_models)
cb_add_test(test_qformer LABELS golden SOURCES vision/test_qformer.cpp LIBS cb_models)
cb_add_test(test_vision_pretrained_files LABELS unit SOURCES vision/test_pretrained_files.cpp LIBS cb_models)
