cb_add_test(test_kernels LABELS unit
            SOURCES framework/kernels/test_linear.cpp framework/kernels/test_weight_format.cpp
                    framework/kernels/test_row_threads.cpp framework/kernels/test_weight_memory.cpp
                    framework/kernels/test_attention.cpp framework/kernels/test_rms_norm.cpp
                    framework/kernels/test_rope.cpp framework/kernels/test_argmax.cpp
                    framework/kernels/test_gemm.cpp)
