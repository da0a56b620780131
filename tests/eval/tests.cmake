cb_add_test(test_caption_metrics LABELS unit SOURCES eval/test_caption_metrics.cpp LIBS cb_framework)

# chatbridge-eval on the tiny eval splits through chatbridge-launch (1 and 2 ranks).
cb_add_test(test_eval_dist LABELS integration SOURCES eval/test_eval_dist.cpp distributed/process_util.cpp
            LIBS cb_framework)
add_dependencies(test_eval_dist chatbridge-eval chatbridge-launch)
target_compile_definitions(test_eval_dist PRIVATE CB_EVAL="$<TARGET_FILE:chatbridge-eval>"
                                                  CB_LAUNCH="$<TARGET_FILE:chatbridge-launch>")
