add_library(cb_ckpt_expect STATIC framework/checkpoint/expect.cpp)
chatbridge_target(cb_ckpt_expect)
target_link_libraries(cb_ckpt_expect PUBLIC cb_test_support)
cb_add_test(test_ckpt_golden LABELS golden SOURCES framework/checkpoint/test_ckpt_golden.cpp LIBS cb_ckpt_expect)
cb_add_test(test_ckpt_unit LABELS unit SOURCES framework/checkpoint/test_ckpt_unit.cpp LIBS cb_ckpt_expect)
cb_add_test(test_ckpt_convert LABELS golden SOURCES framework/checkpoint/test_ckpt_convert.cpp LIBS cb_ckpt_expect)
add_dependencies(test_ckpt_convert chatbridge-convert)
target_compile_definitions(test_ckpt_convert PRIVATE CHATBRIDGE_CONVERT_BIN="$<TARGET_FILE:chatbridge-convert>")
cb_add_test(test_safetensors LABELS unit SOURCES framework/checkpoint/test_safetensors.cpp)
cb_add_test(test_torch_save LABELS unit SOURCES framework/checkpoint/test_torch_save.cpp support/process_util.cpp
            support/torch_peer.cpp)
cb_add_test(test_packed_weights LABELS unit SOURCES framework/checkpoint/test_packed_weights.cpp
            framework/checkpoint/llama_dir.cpp)
cb_add_test(test_quantize_memory LABELS integration SOURCES framework/checkpoint/test_quantize_memory.cpp
            framework/checkpoint/llama_dir.cpp support/process_util.cpp)
add_dependencies(test_quantize_memory chatbridge-convert)
target_compile_definitions(test_quantize_memory PRIVATE CHATBRIDGE_CONVERT_BIN="$<TARGET_FILE:chatbridge-convert>")
