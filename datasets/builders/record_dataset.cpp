#include "datasets/builders/record_dataset.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>

#include "datasets/media/image_decode.h"
#include "framework/error.h"
#include "framework/worker_pool.h"

namespace cb {

namespace fs = std::filesystem;

namespace {

ImageDecoder& thread_decoder() {
  thread_local ImageDecoder decoder;
  return decoder;
}

// Runs a media step; exceptions that do not name the file get it prepended.
template <typename F>
torch::Tensor load_media(const char* what, const fs::path& path, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    if (msg.find(path.string()) != std::string::npos) throw;
    fail("{} {}: {}", what, path.string(), msg.substr(0, msg.find('\n')));
  }
}

void check_shape(const torch::Tensor& t, int64_t dim, const char* what, const fs::path& path) {
  if (t.dim() != dim)
    fail("{} {}: the processor returned {} where {} dimensions were expected", what, path.string(), c10::str(t.sizes()),
         dim);
}

std::string media_key(const Item& it) {
  std::string key = it.image.string() + '\n' + it.video.string() + '\n' + it.audio.string();
  for (const fs::path& f : it.frames) key += '\n' + f.string();
  return key;
}

// Records of one file as the scan met them, their texts copied (the scan's views last one callback).
struct RecordBatch {
  uint32_t file = 0;
  std::string text;                    // the records' JSON texts back to back
  std::vector<size_t> ends;            // record k is text[ends[k - 1], ends[k])
  std::vector<ScannedRecord> records;  // span and place in the file (.text left empty)

  void add(const ScannedRecord& r) {
    text += r.text;
    ends.push_back(text.size());
    records.push_back(r);
    records.back().text = {};
  }
  std::string_view text_of(size_t k) const {
    const size_t begin = k ? ends[k - 1] : 0;
    return std::string_view(text).substr(begin, ends[k] - begin);
  }
};

// What the check found in one record.
struct CheckedRecord {
  uint32_t items = 0;                   // how many items the record gives
  std::vector<std::string> media_keys;  // of each item, when eval items are grouped by media
  std::optional<std::string> bad;       // why the record is unusable (BadRecord)
};

constexpr size_t kCheckBatch = 2048;  // records per check job

// Parses each record of `batch` as get() will (after `quick`, where it can vouch for the record); the
// items are dropped here, on the worker.
std::vector<CheckedRecord> check_batch(const RecordBatch& batch, const ItemParser& parse, const QuickCheck& quick,
                                       const SplitContext& split, bool media_keys) {
  std::vector<CheckedRecord> out(batch.records.size());
  for (size_t k = 0; k < out.size(); ++k) try {
      if (quick && !media_keys)
        if (const auto n = quick(batch.text_of(k), split)) {
          out[k].items = *n;
          continue;
        }
      const std::vector<Item> items = parse(nlohmann::json::parse(batch.text_of(k)), split);
      out[k].items = static_cast<uint32_t>(items.size());
      if (media_keys)
        for (const Item& it : items) out[k].media_keys.push_back(media_key(it));
    } catch (const BadRecord& bad) {
      out[k].bad = bad.reason;
    }
  return out;
}

}  // namespace

RecordDataset::RecordDataset(DatasetInfo info, const RecordFiles& files, ItemParser parse, SplitContext split,
                             bool group_references, Processor vis, Processor aud, QuickCheck quick)
    : Dataset(std::move(info)),
      parse_(std::move(parse)),
      split_(std::move(split)),
      vis_(std::move(vis)),
      aud_(std::move(aud)) {
  const DatasetInfo& di = this->info();
  if (di.image && !vis_.media && !vis_.file) fail("{}: the vis_processor is not an image processor", di.name());
  if (di.video && !vis_.file && !vis_.media) fail("{}: the vis_processor is not a video or image processor", di.name());
  if (di.audio && !aud_.file) fail("{}: the aud_processor does not read audio files (e.g. blip_audio_eval)", di.name());

  // The check parses every record as get() will, but without the text processor (its output is not
  // kept, and it cannot make a record unusable), unless `quick` vouches for it from its text. Parsing
  // is most of the start-up (a JSON tree per record, ~2 us), so batches of records are parsed on a pool while the scan
  // goes on, and their results are taken in file order: instance ids, grouping and the malformed list stay as one
  // thread would make them.
  SplitContext check = split_;
  check.text = [](std::string_view s) { return std::string(s); };
  std::map<std::string, int64_t> first_of_media;  // grouped eval sets only
  int64_t instance = 0;
  std::vector<BadSample> unreadable;  // lines that are not JSON, listed first as they always were
  struct Pending {
    std::shared_ptr<const RecordBatch> batch;
    std::future<std::vector<CheckedRecord>> checked;
  };
  std::deque<Pending> pending;  // in file order
  const auto workers = static_cast<size_t>(std::max(1, at::get_num_threads()));
  WorkerPool pool(workers);
  const auto take_oldest = [&] {
    const std::vector<CheckedRecord> checked = pending.front().checked.get();  // rethrows what is not a BadRecord
    const RecordBatch& batch = *pending.front().batch;
    for (size_t k = 0; k < checked.size(); ++k) {
      const ScannedRecord& r = batch.records[k];
      if (checked[k].bad) {
        malformed_.push_back({files.paths[batch.file].string(), r.where() + ": " + *checked[k].bad});
        ++instance;
        continue;
      }
      for (uint32_t sub = 0; sub < checked[k].items; ++sub) {
        const ItemRef ref{.span = r.span, .file = batch.file, .sub = sub, .instance_id = instance++};
        if (group_references) {
          auto [pos, fresh] = first_of_media.emplace(checked[k].media_keys[sub], size());
          if (!fresh) {
            merged_[pos->second].push_back(ref);
            continue;
          }
        }
        refs_.push_back(ref);
      }
    }
    pending.pop_front();
  };
  const auto submit = [&](std::shared_ptr<RecordBatch>& batch) {
    if (!batch || batch->records.empty()) return;
    std::shared_ptr<const RecordBatch> b = std::move(batch);
    pending.push_back({b, pool.submit([this, b, &check, &quick, group_references] {
                         return check_batch(*b, parse_, quick, check, group_references);
                       })});
    while (pending.size() > 2 * workers) take_oldest();  // bounded memory: a few batches in flight
  };
  for (const fs::path& path : files.paths) {
    std::vector<std::string> bad_lines;
    const auto file = static_cast<uint32_t>(files_.size());
    std::shared_ptr<RecordBatch> batch;
    files_.push_back(std::make_unique<JsonRecordFile>(
        path, "annotation file",
        [&](const ScannedRecord& r) {
          if (!batch) {
            batch = std::make_shared<RecordBatch>();
            batch->file = file;
          }
          batch->add(r);
          if (batch->records.size() == kCheckBatch) submit(batch);
        },
        bad_lines, files.layout));
    submit(batch);
    for (auto& why : bad_lines) unreadable.push_back({path.string(), std::move(why)});
  }
  while (!pending.empty()) take_oldest();
  malformed_.insert(malformed_.begin(), unreadable.begin(), unreadable.end());
  refs_.shrink_to_fit();
}

Item RecordDataset::parse_ref(const ItemRef& ref) const {
  std::vector<Item> items = parse_(files_[ref.file]->read(ref.span), split_);
  if (ref.sub >= items.size())
    fail("{}: the record at byte {} gives fewer items than when it was scanned (was the file changed during the run?)",
         files_[ref.file]->path().string(), static_cast<uint64_t>(ref.span.offset));
  Item it = std::move(items[ref.sub]);
  it.instance_id = ref.instance_id;
  if (it.id.empty()) it.id = std::to_string(it.instance_id);  // records without an id
  return it;
}

Item RecordDataset::item(int64_t i) const {
  Item it = parse_ref(refs_.at(static_cast<size_t>(i)));
  if (auto m = merged_.find(i); m != merged_.end())
    for (const ItemRef& ref : m->second) {
      Item other = parse_ref(ref);
      it.answers.insert(it.answers.end(), other.answers.begin(), other.answers.end());
    }
  return it;
}

Sample RecordDataset::get(int64_t i) const {
  Item it = item(i);
  Sample s;
  if (!it.image.empty()) {
    s.image = load_media("image", it.image, [&] {
      return vis_.media ? vis_.media(thread_decoder().decode_file(it.image)) : vis_.file(it.image.string());
    });
    check_shape(s.image, 3, "image", it.image);
  }
  if (!it.video.empty()) {
    if (!vis_.file) fail("{}: video files need a vis_processor that reads them (e.g. alpro_video_eval)", name());
    // alpro layout [3,n,S,S] -> the model's frames-first [n,3,S,S].
    s.image = load_media("video", it.video, [&] { return vis_.file(it.video.string()); });
    check_shape(s.image, 4, "video", it.video);
    s.image = s.image.permute({1, 0, 2, 3}).contiguous();
  }
  if (!it.frames.empty()) {
    if (!vis_.media) fail("{}: frame files need an image vis_processor (e.g. blip_image_eval)", name());
    std::vector<torch::Tensor> frames;
    for (const fs::path& f : it.frames) {
      frames.push_back(load_media("frame", f, [&] { return vis_.media(thread_decoder().decode_file(f)); }));
      check_shape(frames.back(), 3, "frame", f);
    }
    s.image = torch::stack(frames);
  }
  if (!it.audio.empty()) {
    s.audio = load_media("audio", it.audio, [&] { return aud_.file(it.audio.string()); });
    check_shape(s.audio, 3, "audio", it.audio);
  }
  s.text_input = std::move(it.text_input);
  s.answers = std::move(it.answers);
  s.weights = std::move(it.weights);
  s.caption = std::move(it.caption);
  s.id = std::move(it.id);
  s.instance_id = it.instance_id;
  return s;
}

std::string RecordDataset::describe(int64_t i) const {
  const Item it = parse_ref(refs_.at(static_cast<size_t>(i)));
  std::string out;
  for (const fs::path* p : {&it.image, &it.video, &it.audio})
    if (!p->empty()) out += (out.empty() ? "" : " + ") + p->string();
  if (!it.frames.empty()) out += (out.empty() ? "" : " + ") + it.frames.front().parent_path().string();
  return out;
}

BuiltDatasets build_record_sets(const BuildContext& ctx, const RecordSetSpec& spec) {
  const std::string data_type = ctx.data_type(spec.data_type);
  if (data_type != "images" && data_type != "videos" && data_type != "audios")
    fail("{}: '{}' is not one of images, videos, audios", ctx.key("data_type"), data_type);
  BuiltDatasets out;
  for (const std::string& split : ctx.splits()) {
    const bool train = split == "train";
    if (train && spec.eval_only)
      fail("{}: {} has no train dataset in the original", ctx.key("build_info.annotations.train"), ctx.builder());
    if (!train && spec.train_only)
      fail("{}: {} has no evaluation dataset in the original (train only)", ctx.key("build_info.annotations." + split),
           ctx.builder());

    DatasetInfo info{.builder = ctx.builder(), .split = split, .kind = spec.kind};
    info.image = data_type == "images";
    info.video = data_type == "videos";
    info.audio = data_type == "audios" || spec.audio;

    SplitContext sc{.train = train, .text = ctx.text_processor(train)};
    Processor vis, aud;
    if (data_type != "audios") {
      sc.vis_root = ctx.media_root(data_type);
      vis = ctx.processor("vis_processor", train);
    }
    if (info.audio) {
      sc.aud_root = ctx.media_root("audios");
      aud = ctx.processor("aud_processor", train);
    }

    RecordFiles files{.paths = ctx.annotation_files(split), .layout = spec.layout};
    if (!train && spec.eval_records_in_first_file) files.paths.resize(1);
    out[split] = std::make_shared<RecordDataset>(std::move(info), files, spec.parse, std::move(sc),
                                                 !train && spec.group_eval_references, std::move(vis), std::move(aud),
                                                 spec.quick_check);
  }
  return out;
}

FactoryOf<Kind::dataset_builder>::type record_builder(std::string name, RecordSetSpec spec) {
  return [name = std::move(name), spec = std::move(spec)](const Config& section, const fs::path& cache_root) {
    return build_record_sets(BuildContext(name, section, cache_root), spec);
  };
}

void weigh_answers(const std::vector<std::string>& answers, Item& item) {
  // Summed in double as Python does, stored as float32 as torch.Tensor(weights) does.
  std::vector<double> sums;
  for (const std::string& a : answers) {
    auto it = std::find(item.answers.begin(), item.answers.end(), a);
    if (it == item.answers.end()) {
      item.answers.push_back(a);
      sums.push_back(1.0 / static_cast<double>(answers.size()));
    } else sums[size_t(it - item.answers.begin())] += 1.0 / static_cast<double>(answers.size());
  }
  item.weights.assign(sums.begin(), sums.end());
}

}  // namespace cb
