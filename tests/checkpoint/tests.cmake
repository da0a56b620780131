add_library(cb_ckpt_expect STATIC checkpoint/expect.cpp)
chatbridge_target(cb_ckpt_expect)
target_link_libraries(cb_ckpt_expect PUBLIC cb_test_support)
cb_add_test(test_ckpt_golden LABELS golden SOURCES checkpoint/test_ckpt_golden.cpp LIBS cb_ckpt_expect)
