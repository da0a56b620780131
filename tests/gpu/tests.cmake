# GPU tests (label gpu): each case prints one SKIP line and counts as skipped without a CUDA device.
# scripts/gpu-check runs them on a GPU machine; here they build and skip.
set(CB_GPU_TEST_PROPERTIES PROPERTIES SKIP_RETURN_CODE 77)
cb_add_test(test_gpu_models LABELS gpu SOURCES gpu/test_gpu_models.cpp LIBS cb_runners ${CB_GPU_TEST_PROPERTIES})
cb_add_test(test_gpu_train LABELS gpu SOURCES gpu/test_gpu_train.cpp LIBS cb_runners ${CB_GPU_TEST_PROPERTIES})
cb_add_test(test_gpu_prefetch LABELS gpu SOURCES gpu/test_gpu_prefetch.cpp ${CB_GPU_TEST_PROPERTIES})
cb_add_test(test_gpu_nccl LABELS gpu SOURCES gpu/test_gpu_nccl.cpp ${CB_GPU_TEST_PROPERTIES})
