// Stage-2 (MULTIS instruction tuning) conversation strings, as the original's TASKDataset builds them
// (custom_datasets/valor_data/data_task.py): a modality prefix with <query>
// placeholders, then either one instruction/answer turn (cap, qa, ocr, det, rea tasks) or up to 8
// LLaVA-format turns (conv tasks).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace cb {

// task -> instruction templates (task_prompt.json); "<QUESTION>" is replaced in qa tasks.
using TaskPrompts = std::map<std::string, std::vector<std::string>>;
TaskPrompts load_task_prompts(const std::string& path);

class TaskConversation {
 public:
  // Validates the task tag (it must name a modality, ti-/tv-/ta-/tva-, and a kind: cap, qa, ocr, det,
  // rea or conv) and, for cap/qa/ocr, that `prompts` has templates for it; cb::Error otherwise.
  TaskConversation(std::string task, const TaskPrompts& prompts, bool zh);

  // Empty if `record` has what this task reads, else the reason it is malformed.
  std::string check(const nlohmann::json& record) const;
  // The conversation for a checked record; random choices (caption, QA pair, template) from `rng`.
  std::string build(const nlohmann::json& record, std::mt19937_64& rng) const;

 private:
  enum class Kind { cap, qa, ocr, det_rea, conv };
  std::string task_;
  Kind kind_;
  std::string prefix_;
  std::vector<std::string> prompts_;
  bool zh_;
};

// The original's clean(): drops "<image>\n", "\n<image>" and the video/audio/Chinese equivalents.
std::string clean_media_tags(std::string text);

}  // namespace cb
