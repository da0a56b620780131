# Runner: checkpoints, exact resume.
cb_add_test(test_runner LABELS unit SOURCES runner/test_runner.cpp LIBS cb_runners)

add_executable(cb_runner_test_worker runner/runner_worker.cpp support/golden.cpp)  # golden.cpp: no Catch main
chatbridge_target(cb_runner_test_worker)
chatbridge_link(cb_runner_test_worker PRIVATE cb_runners Catch2::Catch2)
target_compile_definitions(cb_runner_test_worker PRIVATE CHATBRIDGE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
set_target_properties(cb_runner_test_worker PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
cb_add_test(test_runner_dist LABELS integration SOURCES runner/test_runner_dist.cpp distributed/process_util.cpp LIBS cb_framework)
add_dependencies(test_runner_dist cb_runner_test_worker)
target_compile_definitions(test_runner_dist PRIVATE CB_RUNNER_WORKER="$<TARGET_FILE:cb_runner_test_worker>")

# The real trainer under chatbridge-launch: kill -9 of a worker, restart, same per-step losses.
cb_add_test(test_trainer_restart LABELS integration SOURCES runner/test_trainer_restart.cpp distributed/process_util.cpp
            LIBS cb_framework)
add_dependencies(test_trainer_restart chatbridge-train chatbridge-launch)
target_compile_definitions(test_trainer_restart PRIVATE CB_TRAIN="$<TARGET_FILE:chatbridge-train>"
                                                        CB_LAUNCH="$<TARGET_FILE:chatbridge-launch>")
cb_add_test(test_flat_adamw LABELS unit SOURCES runner/test_flat_adamw.cpp LIBS cb_runners)
