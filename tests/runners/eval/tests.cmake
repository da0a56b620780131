cb_add_test(test_cider LABELS golden unit SOURCES runners/eval/test_cider.cpp LIBS cb_runners)
cb_add_test(test_caption_metrics LABELS unit SOURCES runners/eval/test_caption_metrics.cpp LIBS cb_runners)

# chatbridge-eval on the tiny eval splits through chatbridge-launch (1 and 2 ranks).
cb_add_test(test_eval_dist LABELS integration SOURCES runners/eval/test_eval_dist.cpp support/process_util.cpp
            LIBS cb_runners)
add_dependencies(test_eval_dist chatbridge-eval chatbridge-launch)
target_compile_definitions(test_eval_dist PRIVATE CB_EVAL="$<TARGET_FILE:chatbridge-eval>"
                                                  CB_LAUNCH="$<TARGET_FILE:chatbridge-launch>")

# Every benchmark yaml (eval_configs/{caption,qa,dialogue}) through chatbridge-eval on a generated two-sample split.
cb_add_test(test_benchmark_configs LABELS integration
            SOURCES runners/eval/test_benchmark_configs.cpp support/process_util.cpp support/make_media.cpp LIBS cb_runners)
add_dependencies(test_benchmark_configs chatbridge-eval)
target_compile_definitions(test_benchmark_configs PRIVATE CB_EVAL="$<TARGET_FILE:chatbridge-eval>")
