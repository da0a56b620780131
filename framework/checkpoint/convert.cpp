#include "framework/checkpoint/convert.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/load.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"
#include "framework/json_file.h"

namespace cb {

uint64_t parse_byte_size(const std::string& text) {
  size_t end = 0;
  while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
  if (end == 0 || end > 15) fail("'{}' is not a byte size (e.g. 5GB, 500MB, 2GiB)", text);
  const uint64_t n = std::stoull(text.substr(0, end));
  std::string unit;
  for (char c : text.substr(end)) unit += char(std::toupper(static_cast<unsigned char>(c)));
  const std::pair<const char*, uint64_t> units[] = {{"", 1},
                                                    {"B", 1},
                                                    {"KB", 1000},
                                                    {"MB", 1000000},
                                                    {"GB", 1000000000},
                                                    {"KIB", 1ull << 10},
                                                    {"MIB", 1ull << 20},
                                                    {"GIB", 1ull << 30}};
  for (const auto& [name, scale] : units)
    if (unit == name) return n * scale;
  fail("'{}' is not a byte size: unknown unit '{}' (use B, KB, MB, GB, KiB, MiB or GiB)", text, text.substr(end));
}

std::string format_byte_size(uint64_t bytes) {
  if (bytes >= 1000000000) return fmt::format("{:.2f} GB", bytes / 1e9);
  if (bytes >= 1000000) return fmt::format("{:.1f} MB", bytes / 1e6);
  if (bytes >= 1000) return fmt::format("{:.1f} KB", bytes / 1e3);
  return fmt::format("{} B", bytes);
}

TaggedStateDict load_with_packed_tags(const std::filesystem::path& input, const std::string& entry) {
  TaggedStateDict out;
  auto add_tags = [&](const std::filesystem::path& file) {
    if (file.extension() != ".safetensors") return;
    const auto tags = SafetensorsFile(file).packed_tags();
    out.packed.insert(tags.begin(), tags.end());
  };
  if (!std::filesystem::is_directory(input)) {
    out.tensors = load_state_dict_file(input, entry);
    add_tags(input);
    return out;
  }
  for_each_hf_shard(input, [&](const StateDict& shard, const std::filesystem::path& file) {
    for (const auto& kv : shard) out.tensors.insert(kv.key(), kv.value());
    add_tags(file);
  });
  return out;
}

std::vector<std::filesystem::path> save_safetensors_sharded(const StateDict& sd, const std::filesystem::path& dir,
                                                            uint64_t max_shard_bytes, const PackedTags& packed) {
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  // Greedy in state-dict order, as transformers' shard_checkpoint: a tensor larger than the limit
  // gets a shard of its own.
  std::vector<StateDict> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& kv : sd) {
    const uint64_t bytes = kv.value().numel() * kv.value().element_size();
    if (max_shard_bytes && current + bytes > max_shard_bytes && !shards.back().is_empty()) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().insert(kv.key(), kv.value());
    current += bytes;
    total += bytes;
  }
  if (shards.size() == 1) {
    save_safetensors(dir / "model.safetensors", sd, metadata, packed);
    return {dir / "model.safetensors"};
  }
  std::vector<std::filesystem::path> written;
  nlohmann::json weight_map = nlohmann::json::object();  // sorted keys, as Hugging Face writes it
  for (size_t i = 0; i < shards.size(); ++i) {
    auto name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
    save_safetensors(dir / name, shards[i], metadata, packed);
    for (const auto& kv : shards[i]) weight_map[kv.key()] = name;
    written.push_back(dir / name);
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  atomic_write_file(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  written.push_back(dir / "model.safetensors.index.json");
  return written;
}

namespace {

using kernels::WeightFormat;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

torch::ScalarType dense_dtype(WeightFormat f) {
  switch (f) {
    case WeightFormat::bf16: return torch::kBFloat16;
    case WeightFormat::f16: return torch::kHalf;
    case WeightFormat::f32: return torch::kFloat;
    default: return torch::kHalf;  // q8_0/q4_0: the tensors left dense (embeddings, norms), as the loader holds them
  }
}

// How `t` (named `name`) is stored in a `format` directory.
TensorSpec output_spec(const std::string& name, const torch::Tensor& t, WeightFormat format, const std::string& file) {
  if (is_llama_linear_weight(name) && !t.is_floating_point())
    fail(
        "{}: '{}' is {}, not a floating-point weight: the input is already quantized; quantize from the "
        "fp32/fp16/bf16 directory",
        file, name, safetensors_dtype_name(t.scalar_type()));
  if (!t.is_floating_point() || ends_with(name, "rotary_emb.inv_freq"))
    return TensorSpec::dense(name, t.scalar_type(), t.sizes().vec());
  if (is_llama_linear_weight(name) && kernels::is_block_format(format)) {
    if (t.dim() != 2) fail("{}: '{}' is a {}-d tensor, not a linear weight [out, in]", file, name, t.dim());
    if (t.size(1) % kernels::kQuantBlock != 0)
      fail("{}: '{}' [{}, {}] cannot be stored {}: its {} input features are not a multiple of {}", file, name,
           t.size(0), t.size(1), kernels::weight_format_name(format), t.size(1), kernels::kQuantBlock);
    return TensorSpec::packed_weight(name, format, t.size(0), t.size(1));
  }
  return TensorSpec::dense(name, dense_dtype(format), t.sizes().vec());
}

// `t` converted to `spec`: packed a slice of rows at a time (no fp32 copy of a whole lm_head), or cast.
torch::Tensor convert_tensor(const TensorSpec& spec, const torch::Tensor& t, const std::string& file) {
  if (spec.packed) {
    auto out = torch::empty(spec.shape, torch::kUInt8);
    constexpr int64_t kRowsPerSlice = 512;
    for (int64_t r = 0; r < t.size(0); r += kRowsPerSlice) {
      const auto n = std::min(kRowsPerSlice, t.size(0) - r);
      out.narrow(0, r, n).copy_(kernels::pack_weight(t.narrow(0, r, n), *spec.packed).data);
    }
    return out;
  }
  auto out = t.to(spec.dtype);
  if (spec.dtype == torch::kHalf && t.scalar_type() != torch::kHalf && !torch::isfinite(out).all().item<bool>() &&
      torch::isfinite(t).all().item<bool>())
    fail("{}: '{}' has values outside fp16's range (|x| > 65504); convert it to bf16 instead", file, spec.name);
  return out;
}

// Input files that are weights or their index (not copied to the output).
bool is_weight_file(const std::filesystem::path& p) {
  const auto ext = p.extension().string();
  return ends_with(p.filename().string(), ".index.json") || ext == ".safetensors" || ext == ".bin" || ext == ".pt" ||
         ext == ".pth" || ext == ".h5" || ext == ".msgpack" || ext == ".ckpt";
}

const char* torch_dtype_name(torch::ScalarType t) {
  return t == torch::kBFloat16 ? "bfloat16" : t == torch::kHalf ? "float16" : "float32";
}

}  // namespace

bool is_llama_linear_weight(const std::string& name) {
  if (name == "lm_head.weight") return true;
  for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
    if (ends_with(name, std::string(".") + proj + ".weight")) return true;
  return false;
}

void copy_non_weight_files(const std::filesystem::path& in, const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  for (const auto& e : fs::directory_iterator(in))
    if (e.is_regular_file() && !is_weight_file(e.path()))
      fs::copy_file(e.path(), out / e.path().filename(), fs::copy_options::overwrite_existing);
}

namespace {

// quantize_hf_directory's work, once its checks have passed; the first shard's writer creates `out`.
QuantizeReport write_quantized(const std::filesystem::path& in, const std::filesystem::path& out, WeightFormat format) {
  namespace fs = std::filesystem;

  QuantizeReport report;
  std::vector<std::pair<fs::path, std::vector<std::string>>> shards;  // written file, its tensors
  uint64_t total = 0;
  for_each_hf_shard(in, [&](const StateDict& sd, const fs::path& file) {
    std::vector<TensorSpec> plan;
    for (const auto& kv : sd) plan.push_back(output_spec(kv.key(), kv.value(), format, file.string()));
    const auto part = out / fmt::format("model-{:05d}.safetensors.part", shards.size() + 1);
    SafetensorsWriter writer(part, plan, {{"format", "pt"}});
    std::vector<std::string> names;
    for (const auto& spec : plan) {
      const auto& t = sd[spec.name];
      writer.write(spec.name, convert_tensor(spec, t, file.string()));
      report.bytes_in += t.numel() * t.element_size();
      ++(spec.packed ? report.packed : report.kept);
      names.push_back(spec.name);
    }
    writer.commit();
    total += writer.data_bytes();
    spdlog::info("{}: {} tensors -> {} ({})", file.string(), plan.size(), part.filename().string(),
                 format_byte_size(writer.data_bytes()));
    shards.emplace_back(part, std::move(names));
  });
  report.bytes_out = total;
  report.shards = shards.size();
  // The shard count is known only now: name the files as Hugging Face does.
  if (shards.size() == 1) {
    fs::rename(shards[0].first, out / "model.safetensors");
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const auto name = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      fs::rename(shards[i].first, out / name);
      for (const auto& t : shards[i].second) weight_map[t] = name;
    }
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    atomic_write_file(out / "model.safetensors.index.json", index.dump(2) + "\n");
  }

  auto config = read_json_file(in / "config.json", "model config");
  if (!config.is_object()) fail("{}: not a JSON object", (in / "config.json").string());
  config["torch_dtype"] = torch_dtype_name(dense_dtype(format));
  if (kernels::is_block_format(format))
    config["quantization_config"] = {{"quant_method", "chatbridge"},
                                     {"weight_format", kernels::weight_format_name(format)},
                                     {"block_size", kernels::kQuantBlock}};
  copy_non_weight_files(in, out);  // config.json too, replaced next
  atomic_write_file(out / "config.json", config.dump(2) + "\n");
  return report;
}

}  // namespace

QuantizeReport quantize_hf_directory(const std::filesystem::path& in, const std::filesystem::path& out,
                                     kernels::WeightFormat format) {
  namespace fs = std::filesystem;
  if (format == WeightFormat::f32) fail("--quantize: fp32 is not a smaller format (q8_0, q4_0, bf16 or fp16)");
  if (!fs::is_directory(in)) fail("{}: not a directory (--quantize reads a Hugging Face LLaMA directory)", in.string());
  if (!fs::exists(in / "config.json")) fail("{}: no config.json (not a Hugging Face model directory)", in.string());
  // Packed weights would have to be unpacked first, and q4_0 from q8_0 rounds twice.
  if (const auto have = hf_weight_format(in))
    fail("{} is already {}: quantize from the fp32/fp16/bf16 directory", in.string(),
         kernels::weight_format_name(*have));
  if (fs::exists(out) && (!fs::is_directory(out) || !fs::is_empty(out)))
    fail("{}: the output directory exists and is not empty", out.string());
  // On failure, remove what this call wrote (so that a rerun can start): the directories it created
  // (the topmost of them), else the contents of `out`, which was empty.
  fs::path created;
  for (auto p = fs::absolute(out); !fs::exists(p); p = p.parent_path()) created = p;
  try {
    return write_quantized(in, out, format);
  } catch (...) {
    std::error_code ec;
    if (!created.empty()) {
      fs::remove_all(created, ec);
    } else {
      std::vector<fs::path> written;
      for (fs::directory_iterator it(out, ec), end; !ec && it != end; it.increment(ec)) written.push_back(it->path());
      for (const auto& p : written) fs::remove_all(p, ec);
    }
    throw;
  }
}

std::optional<kernels::WeightFormat> hf_weight_format(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  const auto config = read_json_file(path, "model config");
  if (!config.is_object() || !config.contains("quantization_config")) return std::nullopt;
  const auto& q = config["quantization_config"];
  if (!q.is_object() || q.value("quant_method", "") != "chatbridge") return std::nullopt;
  if (!q.contains("weight_format") || !q["weight_format"].is_string())
    fail("{}: quantization_config has no weight_format string", path.string());
  return kernels::parse_weight_format(q["weight_format"].get<std::string>(), path.string() + " weight_format");
}

}  // namespace cb
