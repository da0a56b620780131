// Annotation readers at millions of records (docs/benchmarks.md, "Annotations"; not in CI): a JSON list
// of N records is generated once (not shipped) and read by our reader and by the original's path
// (bench/python/annotations_original.py: json.load of the same file plus what the dataset's __init__
// does with it), each in a fresh process so that its peak RSS is the reader's alone; the sides
// alternate over the rounds and the medians are compared.
//
//   chatbridge-bench annotations --records 10000000 --dir /tmp/cb-annotations           (both sides)
//   chatbridge-bench annotations --records 10000000 --dir /tmp/cb-annotations --side ours --reader valor
//
// Readers: `valor` is a stage-1 VALORDataset mapper ({"video_id", "caption"}: CC3M/LAION/WebVid-style),
// `lavis` the coco_caption train split ({"image", "caption", "image_id"}: the LAVIS BaseDataset).
#pragma once
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace cb::bench {

struct AnnotationBenchOptions {
  int64_t records = 10'000'000;
  std::filesystem::path dir;    // where the generated files live (made when absent, reused)
  std::string reader = "both";  // valor, lavis or both
  std::string side = "both";    // ours (this process) or both (each side in a child process)
  int rounds = 1;               // alternating rounds per reader (side both)
  std::string python = "/usr/bin/python3";
};

// side ours: {"reader", "records", "startup_s", "cpu_s", "baseline_rss_mb", "peak_rss_mb",
// "held_rss_mb", "bytes_per_record"}; side both: both sides' medians per reader, the ratios, the machine.
nlohmann::json run_annotation_bench(const AnnotationBenchOptions& opts);

}  // namespace cb::bench
