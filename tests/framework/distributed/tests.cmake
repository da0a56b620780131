# Distributed: c10d process group, GradSync, chatbridge-launch.
add_executable(cb_dist_test_worker framework/distributed/dist_worker.cpp)
chatbridge_target(cb_dist_test_worker)
chatbridge_link(cb_dist_test_worker PRIVATE cb_framework)
set_target_properties(cb_dist_test_worker PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)

cb_add_test(test_grad_sync LABELS unit SOURCES framework/distributed/test_grad_sync.cpp LIBS cb_framework)

cb_add_test(test_data_parallel LABELS integration
            SOURCES framework/distributed/test_data_parallel.cpp support/process_util.cpp LIBS cb_framework)
add_dependencies(test_data_parallel cb_dist_test_worker chatbridge-launch)
target_compile_definitions(test_data_parallel PRIVATE CB_DIST_WORKER="$<TARGET_FILE:cb_dist_test_worker>"
                                                      CB_LAUNCH="$<TARGET_FILE:chatbridge-launch>")

cb_add_test(test_watchdog LABELS unit SOURCES framework/distributed/test_watchdog.cpp support/process_util.cpp
            LIBS cb_framework)

cb_add_test(test_launch_options LABELS unit SOURCES framework/distributed/test_launch_options.cpp LIBS cb_framework)
