#include "runners/train/training_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "framework/checkpoint/atomic_file.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"
#include "framework/json_file.h"
#include "framework/torch_compat.h"

namespace cb {
namespace fs = std::filesystem;

namespace {

constexpr const char* kMarker = "COMPLETE";
constexpr const char* kPrefix = "step_";
constexpr const char* kTmpPrefix = ".tmp-";

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail("checkpoint directory '{}': cannot open to sync", dir.string());
  ::fsync(fd);
  ::close(fd);
}

// Complete checkpoints under output_dir/checkpoints, oldest first.
std::vector<fs::path> complete_checkpoints(const fs::path& output_dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  auto root = checkpoints_dir(output_dir);
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    auto name = e.path().filename().string();
    if (e.is_directory() && name.rfind(kPrefix, 0) == 0 && fs::exists(e.path() / kMarker)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());  // zero-padded step numbers sort as numbers
  return out;
}

// Temporary directories of saves that failed or were cut short by a crash.
void remove_temporaries(const fs::path& root) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.path().filename().string().rfind(kTmpPrefix, 0) == 0) fs::remove_all(e.path(), ec);
}

void write_checkpoint_files(const fs::path& tmp, const CheckpointContents& c) {
  StateDict params;
  for (const auto& p : c.params) params.insert(p.key(), p.value().detach().cpu());
  save_safetensors(tmp / "model.safetensors", params);

  StateDict moments;
  nlohmann::json steps = nlohmann::json::object();
  const auto& st = c.optimizer->state();
  for (const auto& p : c.params) {
    auto it = st.find(compat::optimizer_state_key(p.value()));
    if (it == st.end()) continue;  // never stepped with a gradient yet
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    moments.insert(p.key() + ".exp_avg", s.exp_avg().cpu());
    moments.insert(p.key() + ".exp_avg_sq", s.exp_avg_sq().cpu());
    steps[p.key()] = s.step();
  }
  if (!moments.is_empty()) save_safetensors(tmp / "optimizer.safetensors", moments);  // none before a first step
  atomic_write_file(tmp / "optimizer.json", nlohmann::json{{"step", steps}}.dump());
  atomic_write_file(tmp / "state.json", c.state.to_json().dump());
  atomic_write_file(tmp / "config.yaml", c.config_yaml);
  atomic_write_file(tmp / kMarker, "");
  fsync_dir(tmp);
}

}  // namespace

StateDict trainable_named_parameters(const torch::nn::Module& model) {
  StateDict out;
  std::unordered_set<const void*> seen;  // same dedup as make_adamw
  for (const auto& p : model.named_parameters(true))
    if (p.value().requires_grad() && seen.insert(p.value().unsafeGetTensorImpl()).second)
      out.insert(p.key(), p.value());
  return out;
}

nlohmann::json TrainingState::to_json() const {
  return {{"epoch", epoch},   {"iter", iter},   {"global_step", global_step},
          {"scaler", scaler}, {"ranks", ranks}, {"validation", validation}};
}

TrainingState TrainingState::from_json(const nlohmann::json& j, const std::string& source) {
  TrainingState s;
  try {
    s.epoch = j.at("epoch");
    s.iter = j.at("iter");
    s.global_step = j.at("global_step");
    s.scaler = j.at("scaler");
    s.ranks = j.at("ranks");
    s.validation = j.value("validation", nlohmann::json());  // absent in checkpoints of earlier versions
  } catch (const std::exception& e) {
    fail("{}: {}", source, e.what());
  }
  return s;
}

fs::path checkpoints_dir(const fs::path& output_dir) { return output_dir / "checkpoints"; }

fs::path save_training_checkpoint(const fs::path& output_dir, const CheckpointContents& c, int keep_last) {
  auto root = checkpoints_dir(output_dir);
  fs::create_directories(root);
  remove_temporaries(root);
  auto name = fmt::format("{}{:09d}", kPrefix, c.state.global_step);
  auto final_dir = root / name, tmp = root / (kTmpPrefix + name);
  try {
    fs::create_directories(tmp);
    write_checkpoint_files(tmp, c);
    if (fs::exists(final_dir)) {
      // A same-step save (e.g. epoch end right after a periodic one): swap the two directories in one
      // step, so that a crash never leaves step_N missing; the old one, now under the temporary name,
      // goes (or the next save's remove_temporaries takes it). Where the file system cannot exchange
      // (EINVAL: some network file systems), the old one is first moved aside.
      if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) != 0) {
        if (errno != EINVAL && errno != ENOSYS)
          fail("cannot replace {} with {}: {}", final_dir.string(), tmp.string(), std::strerror(errno));
        const auto aside = root / (kTmpPrefix + std::string("replaced-") + name);
        fs::rename(final_dir, aside);
        fs::rename(tmp, final_dir);
        fs::remove_all(aside);
      } else {
        fs::remove_all(tmp);
      }
    } else {
      fs::rename(tmp, final_dir);
    }
    fsync_dir(root);
  } catch (const std::exception& e) {
    // A failed save (no space left, ...) leaves nothing behind: the space goes back to the earlier
    // checkpoints, which stay as they were.
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fail("checkpoint {} not saved: {}; removed {}, the earlier checkpoints in {} are intact", name, e.what(),
         tmp.string(), root.string());
  }

  if (keep_last > 0) {
    auto all = complete_checkpoints(output_dir);
    // Each goes under a temporary name first: a crash in the middle of remove_all must not leave a
    // half-deleted directory that still holds its COMPLETE marker.
    for (size_t i = 0; i + keep_last < all.size(); ++i) {
      const auto doomed = root / (kTmpPrefix + std::string("pruned-") + all[i].filename().string());
      fs::rename(all[i], doomed);
      fs::remove_all(doomed);
    }
  }
  return final_dir;
}

bool is_complete_checkpoint(const fs::path& dir) {
  std::error_code ec;
  return fs::exists(dir / kMarker, ec);
}

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  auto all = complete_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back();
}

TrainingState load_training_checkpoint(const fs::path& dir, const StateDict& params, torch::optim::AdamW& optimizer) {
  if (!fs::is_directory(dir))
    fail("checkpoint '{}': {}", dir.string(), fs::exists(dir) ? "not a directory" : "does not exist");
  if (!fs::exists(dir / kMarker))
    fail("checkpoint '{}': not a complete training checkpoint (no {} marker)", dir.string(), kMarker);
  SafetensorsFile model(dir / "model.safetensors");
  for (const auto& p : params) {
    if (!model.contains(p.key())) fail("checkpoint '{}': trainable parameter '{}' missing", dir.string(), p.key());
    auto t = model.tensor(p.key());
    if (t.sizes() != p.value().sizes())
      fail("checkpoint '{}': '{}' has shape [{}] but the model's is [{}]", dir.string(), p.key(),
           fmt::join(t.sizes(), ","), fmt::join(p.value().sizes(), ","));
    torch::NoGradGuard ng;
    p.value().copy_(t);
  }
  if (model.entries().size() != params.size())
    fail("checkpoint '{}': {} parameters saved, the model trains {}", dir.string(), model.entries().size(),
         params.size());

  auto steps = read_json_file(dir / "optimizer.json", "checkpoint file").at("step");
  auto& st = optimizer.state();
  st.clear();
  if (steps.empty())
    return TrainingState::from_json(read_json_file(dir / "state.json", "checkpoint file"),
                                    (dir / "state.json").string());
  SafetensorsFile moments(dir / "optimizer.safetensors");
  for (const auto& p : params) {
    if (!steps.contains(p.key())) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(steps.at(p.key()).get<int64_t>());
    s->exp_avg(moments.tensor(p.key() + ".exp_avg").to(p.value().device()).clone());
    s->exp_avg_sq(moments.tensor(p.key() + ".exp_avg_sq").to(p.value().device()).clone());
    st[compat::optimizer_state_key(p.value())] = std::move(s);
    // In the run that saved this, a parameter that once had a gradient keeps a zeroed one (zero_grad
    // zeroes, it does not unset), so AdamW steps it (decay, momentum) even when a batch leaves it
    // unused; without it a resumed run would skip such parameters and drift from an uninterrupted one.
    if (!p.value().grad().defined()) p.value().mutable_grad() = torch::zeros_like(p.value());
  }
  return TrainingState::from_json(read_json_file(dir / "state.json", "checkpoint file"), (dir / "state.json").string());
}

std::vector<uint8_t> torch_cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto t = gen.get_state();
  auto p = t.data_ptr<uint8_t>();
  return {p, p + t.numel()};
}

void set_torch_cpu_rng_state(const std::vector<uint8_t>& bytes) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto t = torch::from_blob(const_cast<uint8_t*>(bytes.data()), {static_cast<int64_t>(bytes.size())}, torch::kUInt8);
  gen.set_state(t.clone());
}

}  // namespace cb
