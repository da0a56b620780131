#include "runners/eval/evaluate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "framework/checkpoint/atomic_file.h"
#include "framework/error.h"
#include "models/conversation.h"

namespace cb {
namespace {

using Clock = std::chrono::steady_clock;

std::string hms(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  return fmt::format("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

// The feature blocks the prompt's <query> markers stand for (get_input_embeds' modality dispatch;
// audio-visual sets give video then audio).
std::vector<Features> encode(ChatBridgeImpl& model, const DatasetInfo& info, const Batch& batch) {
  std::vector<Features> feats;
  if (info.image || info.video) feats.push_back(model.encode_img(batch.image));
  if (info.audio) feats.push_back(model.encode_audio(batch.audio));
  if (feats.empty()) fail("{}: the dataset has neither images, videos nor audio", info.name());
  return feats;
}

nlohmann::json to_json(const EvalItem& it) {
  return {{"index", it.index}, {"id", it.id}, {"prediction", it.prediction}, {"answers", it.answers}};
}

EvalItem from_json(const nlohmann::json& j) {
  return {j.at("index").get<int64_t>(), j.at("id").get<std::string>(), j.at("prediction").get<std::string>(),
          j.at("answers").get<std::vector<std::string>>()};
}

}  // namespace

std::vector<std::string> predict(ChatBridgeImpl& model, const EvalTask& task, const DatasetInfo& info,
                                 const std::vector<Sample>& samples, torch::Device device) {
  torch::NoGradGuard no_grad;
  auto b = collate(samples, info);
  // fp32 inputs, as the demo hands them over (the encoders cast to their own precision).
  if (b.batch.image.defined()) b.batch.image = b.batch.image.to(device, torch::kFloat);
  if (b.batch.audio.defined()) b.batch.audio = b.batch.audio.to(device, torch::kFloat);
  std::vector<std::string> prompts;
  for (size_t i = 0; i < samples.size(); ++i)
    prompts.push_back(task.prompt(info, samples[i].text_input, samples[i].caption));
  const auto feed = model.instruct_inputs(encode(model, info, b.batch), prompts);

  const auto& tok = model.tokenizer();
  const auto& end_sym = model.config().end_sym;
  auto options = task.generate_options();
  options.eos_token_id = tok.eos_id();
  const auto autocast = model.maybe_autocast();
  const auto out = generate_from_embeds(model.llama_model, feed.inputs_embeds, feed.attention_mask, options);
  const auto seqs = out.sequences.to(torch::kCPU).contiguous();
  std::vector<std::string> texts;
  for (int64_t r = 0; r < seqs.size(0); ++r) {
    // After the placeholder, up to the first eos (finished rows continue with pad).
    const auto* p = seqs[r].data_ptr<int64_t>();
    std::vector<int64_t> ids(p + 1, p + seqs.size(1));
    ids.erase(std::find(ids.begin(), ids.end(), tok.eos_id()), ids.end());
    // The answer ends where training ended it: at the model's end_sym ("###" after stage 2; the
    // caption end of stage 1, which the LLaMA learned to write but not to follow with eos).
    spdlog::debug("{}: generated {}", samples[static_cast<size_t>(r)].id, nlohmann::json(tok.decode(ids)).dump());
    auto text = postprocess_answer(tok, ids);
    if (!end_sym.empty()) text = strip_whitespace(text.substr(0, text.find(end_sym)));
    texts.push_back(std::move(text));
  }
  return texts;
}

std::string coverage_warning(const std::string& dataset, int64_t evaluated, int64_t samples,
                             int64_t malformed_records) {
  if (evaluated >= samples && malformed_records == 0) return "";
  std::string note = fmt::format("{}: the metrics cover {} of {} samples", dataset, evaluated, samples);
  if (evaluated < samples) note += fmt::format(" ({} with unreadable media)", samples - evaluated);
  if (malformed_records > 0)
    note += fmt::format("; {} malformed annotation record{} dropped when the set was built, not among them",
                        malformed_records, malformed_records == 1 ? " was" : "s were");
  return note;
}

ChatBridgeImpl& model_to_evaluate(torch::nn::Module& model, const std::string& task) {
  if (auto* m = dynamic_cast<ChatBridgeImpl*>(&model)) return *m;
  fail(
      "task '{}' cannot evaluate the model '{}' (check model.arch: chatbridge-eval evaluates ChatBridge models; "
      "--model-cfg takes the model section of a ChatBridge training yaml)",
      task, model.name());
}

std::optional<nlohmann::ordered_json> evaluate_split(ChatBridgeImpl& model, const EvalTask& task, const Dataset& ds,
                                                     dist::ProcessGroup& pg, const EvalSplitOptions& opts) {
  const auto& info = ds.info();
  if (info.streaming) fail("{}: a streaming (webdataset) set cannot be evaluated", info.name());
  if (info.kind != task.kind())
    fail("{}: run.task '{}' evaluates '{}' datasets, this one is '{}'", info.name(), task.name(), task.kind(),
         info.kind);
  if (opts.batch_size < 1) fail("run.batch_size_eval must be at least 1, got {}", opts.batch_size);

  // This rank's indices: rank, rank + W, ... (a DistributedSampler without its padding duplicates).
  std::vector<int64_t> mine;
  for (int64_t i = pg.rank(); i < ds.size(); i += pg.world_size()) mine.push_back(i);
  const auto batches = (static_cast<int64_t>(mine.size()) + opts.batch_size - 1) / opts.batch_size;
  spdlog::info("evaluating {} with {}: {} samples, {} on this rank in {} batches of {} (rank {}/{})", info.name(),
               task.name(), ds.size(), mine.size(), batches, opts.batch_size, pg.rank(), pg.world_size());

  model.eval();
  std::vector<EvalItem> local;
  std::vector<BadSample> bad;
  const auto start = Clock::now();
  auto last_log = start;
  for (int64_t bi = 0; bi < batches; ++bi) {
    std::vector<Sample> samples;
    std::vector<int64_t> indices;
    for (int64_t k = bi * opts.batch_size; k < std::min<int64_t>((bi + 1) * opts.batch_size, mine.size()); ++k) {
      auto one = load_samples(ds, {mine[k]}, bad);  // skips (and reports) a sample whose media fail
      if (one.empty()) continue;
      samples.push_back(std::move(one.front()));
      indices.push_back(mine[k]);
    }
    if (!samples.empty()) {
      const auto texts = predict(model, task, info, samples, opts.device);
      for (size_t i = 0; i < samples.size(); ++i)
        local.push_back({indices[i], samples[i].id, texts[i], samples[i].answers});
    }
    const auto now = Clock::now();
    if (bi + 1 == batches || now - last_log > std::chrono::seconds(10) || bi == 0) {
      const double elapsed = std::chrono::duration<double>(now - start).count();
      const double per_batch = elapsed / static_cast<double>(bi + 1);
      spdlog::info("{}: batch {}/{}, {:.2f} s/batch, elapsed {}, eta {}", info.name(), bi + 1, batches, per_batch,
                   hms(elapsed), hms(per_batch * static_cast<double>(batches - bi - 1)));
      last_log = now;
    }
  }
  if (!bad.empty())
    spdlog::warn("{}: {} sample(s) skipped on rank {} (unreadable media), first: {}: {}", info.name(), bad.size(),
                 pg.rank(), bad.front().file, bad.front().reason);

  nlohmann::json mine_json = nlohmann::json::array();
  for (const auto& it : local) mine_json.push_back(to_json(it));
  const auto gathered = pg.all_gather_json(mine_json);
  if (!pg.is_main()) return std::nullopt;

  std::vector<EvalItem> items;
  for (const auto& part : gathered)
    for (const auto& j : part) items.push_back(from_json(j));
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  if (items.empty()) fail("{}: no sample could be evaluated", info.name());
  // The metrics leave them out: say so where the figures are read.
  if (const auto note = coverage_warning(info.name(), static_cast<int64_t>(items.size()), ds.size(),
                                         static_cast<int64_t>(ds.malformed().size()));
      !note.empty())
    spdlog::warn("{}", note);

  nlohmann::ordered_json results = nlohmann::ordered_json::array();
  for (const auto& it : items) results.push_back(task.record(it));
  auto metrics = task.metrics(items);
  const auto result_file = opts.output_dir / "result" / (opts.prefix + "_results.json");
  const auto metrics_file = opts.output_dir / (opts.prefix + "_metrics.json");
  std::error_code ec;
  std::filesystem::create_directories(result_file.parent_path(), ec);
  if (ec)
    fail("run.output_dir '{}': cannot create the directory: {}", result_file.parent_path().string(), ec.message());
  atomic_write_file(result_file, results.dump(1) + "\n");
  atomic_write_file(metrics_file, metrics.dump(1) + "\n");
  spdlog::info("{}: {} results -> {}; metrics -> {}: {}", info.name(), items.size(), result_file.string(),
               metrics_file.string(), metrics.dump());
  return metrics;
}

}  // namespace cb
