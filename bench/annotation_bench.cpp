#include "bench/annotation_bench.h"

#include <ATen/Parallel.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

#include "bench/timing.h"
#include "datasets/builders/dataset.h"
#include "datasets/valor/valor_dataset.h"
#include "framework/config_node.h"
#include "framework/error.h"
#include "runners/train/memory_plan.h"

namespace cb::bench {
namespace fs = std::filesystem;
namespace {

// Caption words: CC3M-like captions of 6-17 words (about 60 bytes), from a fixed generator so that
// every run reads the same file.
constexpr const char* kWords[] = {"a",      "the",   "of",      "person", "standing", "in",     "front",  "building",
                                  "with",   "dog",   "playing", "on",     "beach",    "sunset", "city",   "street",
                                  "woman",  "man",   "holding", "red",    "car",      "parked", "near",   "old",
                                  "house",  "green", "field",   "under",  "blue",     "sky",    "little", "girl",
                                  "riding", "bike",  "through", "park",   "view",     "from",   "top",    "mountain"};

struct Lcg {
  uint64_t s;
  uint32_t next() { return static_cast<uint32_t>((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 33); }
};

std::string caption(Lcg& g) {
  std::string c;
  const uint32_t n = 6 + g.next() % 12;
  for (uint32_t w = 0; w < n; ++w) {
    if (w) c += ' ';
    c += kWords[g.next() % std::size(kWords)];
  }
  return c;
}

fs::path annotation_file(const AnnotationBenchOptions& o, const std::string& reader) {
  return o.dir / fmt::format("{}_{}.json", reader, o.records);
}

// The JSON list of `reader`'s records, written once (to a temporary name, renamed when complete).
fs::path generate(const AnnotationBenchOptions& o, const std::string& reader) {
  const fs::path file = annotation_file(o, reader);
  if (fs::exists(file)) return file;
  fs::create_directories(o.dir);
  const fs::path tmp = file.string() + ".part";
  spdlog::warn("annotations: writing {} records to {}", o.records, file.string());
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) fail("annotations: cannot write {}", tmp.string());
    Lcg g{static_cast<uint64_t>(o.records)};
    std::string buf = "[";
    for (int64_t i = 0; i < o.records; ++i) {
      if (i) buf += ", ";
      if (reader == "valor") buf += fmt::format(R"({{"video_id": "cc3m/{:09d}.jpg", "caption": "{}"}})", i, caption(g));
      else  // COCO Karpathy train: five captions per image
        buf += fmt::format(R"({{"caption": "{}", "image": "train2014/COCO_train2014_{:012d}.jpg", "image_id": "{}"}})",
                           caption(g), i / 5, i / 5);
      if (buf.size() > (1 << 20)) out << buf, buf.clear();
    }
    out << buf << "]\n";
    if (!out) fail("annotations: writing {} failed (disk full?)", tmp.string());
  }
  fs::rename(tmp, file);
  return file;
}

// Builds the dataset `reader` on `file` and keeps it alive until the figures are taken.
int64_t build_ours(const std::string& reader, const fs::path& file, const fs::path& dir,
                   std::shared_ptr<const void>& held) {
  if (reader == "valor") {
    ValorDatasetSpec spec{
        .name = "cc3m", .txt = file, .shards = "", .video = dir, .audio = std::nullopt, .datatype = "image"};
    LoaderGroupSpec group;
    group.datasets = {spec};
    group.task = "ti";
    group.data_format = "frame";
    auto ds = std::make_shared<ValorDataset>(spec, group, DataOptions{}, nullptr);
    held = ds;
    return ds->size();
  }
  const std::string yaml = fmt::format(R"(
data_type: images
build_info:
  annotations: {{train: {{storage: '{}'}}}}
  images: {{storage: '{}'}}
vis_processor: {{train: {{name: blip_image_train, image_size: 224}}}}
text_processor: {{train: {{name: blip_caption}}}}
)",
                                       file.string(), dir.string());
  auto built = build_dataset("coco_caption", Config(parse_yaml(yaml, "annotation bench"), "bench"), dir);
  auto ds = built.at("train");
  held = ds;
  return ds->size();
}

nlohmann::json measure_ours(const AnnotationBenchOptions& o, const std::string& reader) {
  const fs::path file = annotation_file(o, reader);
  if (!fs::exists(file)) fail("annotations: {} does not exist (run with --side both first)", file.string());
  const double baseline = current_rss_bytes() / 1048576.0;
  const double c0 = process_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const void> held;
  const int64_t n = build_ours(reader, file, o.dir, held);
  const double startup = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = process_cpu_seconds() - c0;
  const double peak = peak_rss_mb();
  return {{"reader", reader},
          {"records", n},
          {"startup_s", startup},
          {"cpu_s", cpu},
          {"peak_rss_mb", peak},
          {"baseline_rss_mb", baseline},
          {"held_rss_mb", current_rss_bytes() / 1048576.0},
          {"bytes_per_record", (peak - baseline) * 1048576 / std::max<int64_t>(n, 1)}};
}

nlohmann::json run_child(const std::string& cmd) {
  spdlog::info("annotations: {}", cmd);
  std::unique_ptr<FILE, int (*)(FILE*)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) fail("annotations: cannot run {}", cmd);
  std::string out;
  char buf[4096];
  while (size_t k = fread(buf, 1, sizeof buf, p.get())) out.append(buf, k);
  if (pclose(p.release()) != 0) fail("annotations: '{}' failed", cmd);
  return nlohmann::json::parse(out.substr(out.find('{')));
}

nlohmann::json compare(const AnnotationBenchOptions& o, const std::string& reader) {
  const fs::path file = generate(o, reader);
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  const std::string ours = fmt::format("'{}' annotations --side ours --reader {} --records {} --dir '{}' --threads {}",
                                       self, reader, o.records, o.dir.string(), at::get_num_threads());
  const std::string original = fmt::format("'{}' '{}/bench/python/annotations_original.py' --reader {} '{}'", o.python,
                                           CHATBRIDGE_SOURCE_DIR, reader, file.string());
  std::map<std::string, std::vector<nlohmann::json>> runs;
  for (int r = 0; r < o.rounds; ++r)
    for (const char* side : r % 2 ? std::array{"original", "ours"} : std::array{"ours", "original"})
      runs[side].push_back(run_child(side == std::string("ours") ? ours : original));
  nlohmann::json out{{"file", file.string()}, {"file_mb", static_cast<double>(fs::file_size(file)) / 1048576}};
  for (const auto& [side, rs] : runs) {
    nlohmann::json& s = out[side];
    s["records"] = rs.front()["records"];
    for (const char* key : {"startup_s", "cpu_s", "peak_rss_mb", "baseline_rss_mb", "bytes_per_record"}) {
      std::vector<double> v;
      for (const auto& x : rs) v.push_back(x[key].get<double>());
      s[key] = median(v);
    }
    s["runs"] = rs;
  }
  if (out["ours"]["records"] != out["original"]["records"])
    fail("annotations: {} records read here, {} by the original", out["ours"]["records"].dump(),
         out["original"]["records"].dump());
  const auto val = [&](const char* side, const char* key) { return out[side][key].get<double>(); };
  out["startup_speedup"] = val("original", "startup_s") / val("ours", "startup_s");
  out["rss_per_record_ratio"] = val("ours", "bytes_per_record") / val("original", "bytes_per_record");
  out["peak_rss_ratio"] = val("ours", "peak_rss_mb") / val("original", "peak_rss_mb");
  return out;
}

}  // namespace

nlohmann::json run_annotation_bench(const AnnotationBenchOptions& o) {
  if (o.records < 1) fail("annotations: --records must be positive");
  if (o.reader != "valor" && o.reader != "lavis" && o.reader != "both")
    fail("annotations: --reader must be valor, lavis or both, not '{}'", o.reader);
  const std::vector<std::string> readers =
      o.reader == "both" ? std::vector<std::string>{"valor", "lavis"} : std::vector<std::string>{o.reader};
  if (o.side == "ours") {
    if (readers.size() != 1) fail("annotations: --side ours measures one --reader");
    return measure_ours(o, readers.front());
  }
  if (o.side != "both") fail("annotations: --side must be ours or both (the original side is {})", o.python);
  nlohmann::json out{{"records", o.records}, {"rounds", o.rounds}, {"machine", machine_info()}};
  for (const std::string& r : readers) out[r] = compare(o, r);
  return out;
}

}  // namespace cb::bench
