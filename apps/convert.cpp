// chatbridge-convert: torch.save checkpoints (.pth/.pt/.bin, zip or legacy) and Hugging Face
// directories to safetensors, and --inspect to list what a checkpoint holds.
//
//   chatbridge-convert blip2_pretrained.pth --entry model -o blip2.safetensors
//   chatbridge-convert vicuna-7b/ --max-shard-size 5GB -o vicuna-7b-st/
//   chatbridge-convert --inspect checkpoint_3.pth
//   chatbridge-convert --quantize q4_0 vicuna-13b/ vicuna-13b-q4_0/   (q8_0, q4_0, bf16, fp16; docs/checkpoints.md)
//   chatbridge-convert --chatbridge eval_configs/chatbridge_eval.yaml --max-shard-size 5GB -o chatbridge-st/
//   chatbridge-convert out/run/checkpoints/step_000020000 -o checkpoint_1.pth   (the original's format:
//     runners/train/pth_export.h)
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>

#include "framework/app_options.h"
#include "framework/checkpoint/convert.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/checkpoint/torch_load.h"
#include "framework/checkpoint/zip_reader.h"
#include "framework/config.h"
#include "framework/error.h"
#include "models/chatbridge.h"
#include "runners/train/pth_export.h"

namespace {

using Named = std::vector<std::pair<std::string, torch::Tensor>>;

// What --inspect lists: every tensor in a torch.save file's object tree (or below its entry), else
// the state dict and its packed weights' tags.
std::pair<Named, cb::PackedTags> inspect_tensors(const std::filesystem::path& input, const std::string& entry) {
  if (!std::filesystem::is_directory(input)) {
    auto file = cb::MappedFile::open(input);
    if (cb::looks_like_zip(file->data(), file->size()) || cb::looks_like_legacy_torch(file->data(), file->size())) {
      auto obj = cb::torch_load(file);
      const cb::pickle::Value* node = entry.empty() ? obj.root : obj.root->get(entry);
      if (!node) cb::fail("{}: the checkpoint has no entry '{}'", input.string(), entry);
      return {cb::tensors_in(node), {}};
    }
  }
  auto sd = cb::load_with_packed_tags(input, entry);
  Named out;
  for (const auto& kv : sd.tensors) out.emplace_back(kv.key(), kv.value());
  return {std::move(out), std::move(sd.packed)};
}

// One line per tensor: a packed weight as its format and logical shape [out, in], which the totals
// count as parameters (its bytes as stored).
void inspect(const std::filesystem::path& input, const std::string& entry) {
  uint64_t elements = 0, bytes = 0;
  const auto [tensors, packed] = inspect_tensors(input, entry);
  for (const auto& [name, t] : tensors) {
    const auto tag = packed.find(name);
    const bool is_packed = tag != packed.end();
    const auto shape = is_packed ? std::vector<int64_t>{tag->second.rows, tag->second.cols} : t.sizes().vec();
    const std::string type =
        is_packed ? cb::kernels::weight_format_name(*tag->second.packed) : cb::safetensors_dtype_name(t.scalar_type());
    std::printf("%s\t%s\t[%s]\n", name.c_str(), type.c_str(), fmt::format("{}", fmt::join(shape, ", ")).c_str());
    elements += is_packed ? uint64_t(shape[0] * shape[1]) : t.numel();
    bytes += t.numel() * t.element_size();
  }
  std::printf("%zu tensors, %llu parameters, %llu bytes\n", tensors.size(), (unsigned long long)elements,
              (unsigned long long)bytes);
}

int run(int argc, char** argv) {
  CLI::App app{"Convert torch.save checkpoints and Hugging Face directories to safetensors, or inspect them"};
  cb::AppOptions opts;
  cb::add_app_options(app, opts);
  std::string input, output, entry, max_shard, chatbridge_cfg;
  std::vector<std::string> overrides;
  bool inspect_only = false;
  std::string quantize;
  app.add_option("input", input, "a .pth/.pt/.bin/.safetensors file or a Hugging Face model directory");
  app.add_option("--chatbridge", chatbridge_cfg,
                 "instead of an input: assemble the ChatBridge a yaml describes from its parts (eva_vit_g.pth, "
                 "BEATs checkpoint, BLIP-2, LLaMA folder, ckpt) and write its whole state dict");
  app.add_option("--options", overrides, "with --chatbridge: key.path=value overrides, as chatbridge-train");
  // One option that is also the second positional: CLI11 2.4 refuses a positional and an option that
  // share the name `output`.
  app.add_option("-o,--output,output", output,
                 "output .safetensors file (replaced if it exists); with --max-shard-size, the output directory (its "
                 "files of the same names replaced); a .pth file: the original's checkpoint_N.pth from a training "
                 "checkpoint directory; as -o or as the second positional");
  app.add_option("--entry", entry, "the sub-dict of the checkpoint that holds the state dict, e.g. model");
  app.add_option("--max-shard-size", max_shard, "write Hugging Face shards of at most this size, e.g. 5GB");
  app.add_flag("--inspect", inspect_only, "list tensor names, dtypes and shapes, and the totals");
  app.add_option("--quantize", quantize,
                 "q8_0, q4_0, bf16 or fp16: rewrite the Hugging Face LLaMA directory `input` into the directory "
                 "`output` (new or empty) with its linear layers in that format, one shard at a time");
  CLI11_PARSE(app, argc, argv);
  cb::apply_app_options(opts);
  if (inspect_only) {
    if (input.empty()) cb::fail("--inspect needs an input");
    inspect(input, entry);
    return 0;
  }
  if (!quantize.empty()) {
    if (input.empty() || output.empty() || !chatbridge_cfg.empty() || !max_shard.empty() || !entry.empty())
      cb::fail(
          "--quantize takes a Hugging Face directory and an output directory (--quantize FORMAT IN_DIR OUT_DIR), "
          "and no --chatbridge, --max-shard-size (the output keeps the input's shards) or --entry");
    const auto format = cb::kernels::parse_weight_format(quantize, "--quantize");
    const auto r = cb::quantize_hf_directory(input, output, format);
    const auto name = cb::kernels::weight_format_name(format);
    const auto what = cb::kernels::is_block_format(format)
                          ? fmt::format("{} weights packed as {}, {} tensors kept dense", r.packed, name, r.kept)
                          : fmt::format("{} tensors stored as {}", r.kept, name);
    spdlog::info("wrote {} ({} file(s)): {}; {} -> {}", output, r.shards, what, cb::format_byte_size(r.bytes_in),
                 cb::format_byte_size(r.bytes_out));
    return 0;
  }
  if (output.empty()) cb::fail("no output given (-o FILE, or -o DIR with --max-shard-size)");
  if (input.empty() == chatbridge_cfg.empty()) cb::fail("give either an input checkpoint or --chatbridge CONFIG");
  if (std::filesystem::path(output).extension() == ".pth") {
    if (!cb::is_training_checkpoint(input))
      cb::fail("{}: a .pth output is written from a training checkpoint directory (checkpoints/step_<N>/)", input);
    const auto e = cb::export_original_checkpoint(input, output);
    spdlog::info("wrote {}: model ({} tensors), optimizer ({} states), config, scaler, epoch {}", output, e.parameters,
                 e.optimizer_states, e.epoch);
    return 0;
  }
  cb::TaggedStateDict sd;
  if (!chatbridge_cfg.empty()) {
    auto cfg = cb::resolve_config(chatbridge_cfg, overrides);
    torch::manual_seed(cfg.get<int64_t>("run.seed", 42));  // randomly initialised parts as in training
    sd.tensors = cb::module_state_dict(*cb::build_chatbridge(cfg.sub("model")));
  } else {
    sd = cb::load_with_packed_tags(input, entry);
  }
  if (max_shard.empty()) {
    cb::save_safetensors(output, sd.tensors, {{"format", "pt"}}, sd.packed);
    spdlog::info("wrote {} tensors to {}", sd.tensors.size(), output);
  } else {
    auto files = cb::save_safetensors_sharded(sd.tensors, output, cb::parse_byte_size(max_shard), sd.packed);
    // The config and tokenizer, so that the output loads as the Hugging Face directory the input was.
    if (std::filesystem::is_directory(input)) cb::copy_non_weight_files(input, output);
    spdlog::info("wrote {} tensors to {} ({} files)", sd.tensors.size(), output, files.size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cb::run_main("chatbridge-convert", run, argc, argv); }
