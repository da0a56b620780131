# Benchmark set-up only (workload parsing, the shapes the benches build); never timing.
cb_add_test(test_bench LABELS unit SOURCES bench/test_bench.cpp LIBS cb_bench cb_runners)
