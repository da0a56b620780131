# Benchmark set-up only (workload parsing, the shapes the benches build); never timing.
cb_add_test(test_bench LABELS unit SOURCES bench/test_bench.cpp LIBS cb_bench cb_runners)
# Counts and rates are checked when parsed: a negative peak used to print a negative MFU.
add_test(NAME "chatbridge-bench: a non-positive --peak-flops or a negative --threads is refused"
         COMMAND sh -c "! $<TARGET_FILE:chatbridge-bench> decode --workload ${CMAKE_SOURCE_DIR}/tests/bench/small.json \
                          --peak-flops -1 && ! $<TARGET_FILE:chatbridge-bench> kernels --workload \
                          ${CMAKE_SOURCE_DIR}/tests/bench/small.json --threads -2")
set_tests_properties("chatbridge-bench: a non-positive --peak-flops or a negative --threads is refused" PROPERTIES
                     LABELS unit PASS_REGULAR_EXPRESSION "--peak-flops: must be > 0, got -1.*--threads: must be >= 0, got -2")
