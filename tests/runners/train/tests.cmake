# Training loop: checkpoints, exact resume, optimiser, LR schedules.
cb_add_test(test_runner LABELS unit SOURCES runners/train/test_runner.cpp LIBS cb_runners)

add_executable(cb_runner_test_worker runners/train/runner_worker.cpp support/golden.cpp)  # golden.cpp: no Catch main
chatbridge_target(cb_runner_test_worker)
chatbridge_link(cb_runner_test_worker PRIVATE cb_runners Catch2::Catch2)
target_compile_definitions(cb_runner_test_worker PRIVATE CHATBRIDGE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
set_target_properties(cb_runner_test_worker PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
cb_add_test(test_runner_dist LABELS integration SOURCES runners/train/test_runner_dist.cpp support/process_util.cpp LIBS cb_framework)
add_dependencies(test_runner_dist cb_runner_test_worker)
target_compile_definitions(test_runner_dist PRIVATE CB_RUNNER_WORKER="$<TARGET_FILE:cb_runner_test_worker>")

# The real trainer under chatbridge-launch: kill -9 of a worker, restart, same per-step losses.
cb_add_test(test_trainer_restart LABELS integration SOURCES runners/train/test_trainer_restart.cpp support/process_util.cpp
            LIBS cb_framework)
add_dependencies(test_trainer_restart chatbridge-train chatbridge-launch)
target_compile_definitions(test_trainer_restart PRIVATE CB_TRAIN="$<TARGET_FILE:chatbridge-train>"
                                                        CB_LAUNCH="$<TARGET_FILE:chatbridge-launch>")
cb_add_test(test_flat_adamw LABELS unit SOURCES runners/train/test_flat_adamw.cpp LIBS cb_runners)
cb_add_test(test_lr_schedule LABELS golden unit SOURCES runners/train/test_lr_schedule.cpp LIBS cb_runners)
cb_add_test(test_train_trajectory LABELS golden SOURCES runners/train/test_train_trajectory.cpp LIBS cb_runners)
cb_add_test(test_memory_plan LABELS unit SOURCES runners/train/test_memory_plan.cpp LIBS cb_runners)
cb_add_test(test_grad_scaler LABELS unit SOURCES runners/train/test_grad_scaler.cpp LIBS cb_runners)
# chatbridge-convert's checkpoint_N.pth, read back here and loaded by python3-torch.
cb_add_test(test_pth_export LABELS unit SOURCES runners/train/test_pth_export.cpp support/process_util.cpp
            support/torch_peer.cpp support/make_media.cpp LIBS cb_runners)
add_dependencies(test_pth_export chatbridge-convert)
target_compile_definitions(test_pth_export PRIVATE CB_CONVERT="$<TARGET_FILE:chatbridge-convert>")
# Validation during training, checkpoint_best, TensorBoard event files and the loss/LR plot on the tiny
# dataset (scripts/setup --with-tiny-data); the event files are read by check_run_record.py (python3).
cb_add_test(test_runner_validation LABELS integration SOURCES runners/train/test_runner_validation.cpp LIBS cb_runners)
