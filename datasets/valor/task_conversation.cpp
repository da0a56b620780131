#include "datasets/valor/task_conversation.h"

#include <fstream>
#include <set>

#include "framework/error.h"

namespace cb {
namespace {

using nlohmann::json;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

size_t pick(size_t n, std::mt19937_64& rng) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); }

bool is_string_or_string_list(const json& j) {
  if (j.is_string()) return true;
  if (!j.is_array() || j.empty()) return false;
  for (const auto& e : j)
    if (!e.is_string()) return false;
  return true;
}

// A string, or a random element of a list of strings.
std::string string_or_choice(const json& j, std::mt19937_64& rng) {
  return j.is_string() ? j.get<std::string>() : j[pick(j.size(), rng)].get<std::string>();
}

}  // namespace

std::string clean_media_tags(std::string text) {
  for (const char* tag : {"<image>", "<video>", "<audio>", "<图片>", "<视频>", "<音频>"}) {
    const std::string t = tag;
    replace_all(text, t + "\n", "");
    replace_all(text, std::string("\n").append(t), "");
  }
  return text;
}

TaskPrompts load_task_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("cannot open the task prompt file {} (run.prompt_path)", path);
  try {
    return json::parse(in).get<TaskPrompts>();
  } catch (const json::exception& e) {
    fail("{}: expected a JSON object mapping each task to a list of instruction strings ({})", path, e.what());
  }
}

TaskConversation::TaskConversation(std::string task, const TaskPrompts& prompts, bool zh)
    : task_(std::move(task)), zh_(zh) {
  // The original tests 'ti-' first and 'tva-' last; 'tv-' and 'ta-' never match 'tva-'.
  if (contains(task_, "ti-")) prefix_ = zh ? "给定图片：<query>。" : "###Human: Given following image: <query>.";
  else if (contains(task_, "tv-")) prefix_ = zh ? "给定视频：<query>。" : "###Human: Given following video: <query>.";
  else if (contains(task_, "ta-")) prefix_ = zh ? "给定音频：<query>。" : "###Human: Given following audio: <query>.";
  else if (contains(task_, "tva-"))
    prefix_ =
        zh ? "给定视频：<query>。" : "###Human: Given following video: <query> and its background audio: <query>.";
  else fail("task '{}': a stage-2 task must contain ti-, tv-, ta- or tva-", task_);

  if (contains(task_, "cap")) kind_ = Kind::cap;
  else if (contains(task_, "qa")) kind_ = Kind::qa;
  else if (contains(task_, "ocr")) kind_ = Kind::ocr;
  else if (contains(task_, "det") || contains(task_, "rea")) kind_ = Kind::det_rea;
  else if (contains(task_, "conv")) kind_ = Kind::conv;
  else fail("task '{}': a stage-2 task must contain cap, qa, ocr, det, rea or conv", task_);

  if (kind_ == Kind::cap || kind_ == Kind::qa || kind_ == Kind::ocr) {
    auto it = prompts.find(task_);
    if (it == prompts.end() || it->second.empty())
      fail("task '{}' needs instruction templates in the task prompt file", task_);
    prompts_ = it->second;
  }
}

std::string TaskConversation::check(const json& r) const {
  switch (kind_) {
    case Kind::cap: {
      const char* key = r.contains("desc") ? "desc" : "caption";
      return r.contains(key) && is_string_or_string_list(r[key]) ? "" : "no caption/desc string";
    }
    case Kind::qa: {
      if (!r.contains("question") || !r.contains("answer")) return "no question/answer";
      const json &q = r["question"], &a = r["answer"];
      if (q.is_string() && a.is_string()) return "";
      if (is_string_or_string_list(q) && is_string_or_string_list(a) && q.is_array() && a.is_array() &&
          a.size() >= q.size())
        return "";
      return "question/answer must be strings or parallel lists of strings";
    }
    case Kind::ocr: return r.contains("text") && is_string_or_string_list(r["text"]) ? "" : "no text";
    case Kind::det_rea:
    case Kind::conv: {
      if (!r.contains("conversations") || !r["conversations"].is_array()) return "no conversations list";
      const json& c = r["conversations"];
      if (kind_ == Kind::det_rea && c.size() < 2) return "fewer than 2 conversation turns";
      for (const auto& turn : c)
        if (!turn.is_object() || !turn.contains("value") || !turn["value"].is_string() || !turn.contains("from") ||
            !turn["from"].is_string())
          return "a conversation turn without string 'from'/'value'";
      if (kind_ == Kind::det_rea) return "";
      // build() keeps the 'human' and 'gpt' turns among the first 8. Without a 'gpt' one there is no
      // answer to learn: the loss is a mean over no target tokens, NaN ('user'/'assistant' records too).
      std::set<std::string> from;
      for (size_t i = 0; i < std::min<size_t>(c.size(), 8); ++i) {
        if (c[i]["from"] == "gpt") return "";
        from.insert(c[i]["from"].get<std::string>());
      }
      return fmt::format("no 'gpt' turn among the first 8 turns (from: {}): nothing to learn",
                         from.empty() ? "none" : fmt::to_string(fmt::join(from, ", ")));
    }
  }
  return "";
}

std::string TaskConversation::build(const json& r, std::mt19937_64& rng) const {
  std::string conversation;
  std::string instruction, output;
  switch (kind_) {
    case Kind::cap:
      output = string_or_choice(r.contains("desc") ? r["desc"] : r["caption"], rng);
      instruction = prompts_[pick(prompts_.size(), rng)];
      break;
    case Kind::qa: {
      const json &q = r["question"], &a = r["answer"];
      std::string question = q.is_string() ? q.get<std::string>() : "";
      if (q.is_string()) output = a.get<std::string>();
      else {
        size_t i = pick(q.size(), rng);
        question = q[i].get<std::string>(), output = a[i].get<std::string>();
      }
      instruction = prompts_[pick(prompts_.size(), rng)];
      replace_all(instruction, "<QUESTION>", question);
      break;
    }
    case Kind::ocr:
      instruction = prompts_[pick(prompts_.size(), rng)];
      if (r["text"].is_string()) output = r["text"].get<std::string>();
      else
        for (size_t i = 0; i < r["text"].size(); ++i) output += (i ? ", " : "") + r["text"][i].get<std::string>();
      break;
    case Kind::det_rea:
      instruction = clean_media_tags(r["conversations"][0]["value"].get<std::string>());
      output = r["conversations"][1]["value"].get<std::string>();
      break;
    case Kind::conv: {
      conversation = prefix_;
      const json& c = r["conversations"];
      for (size_t i = 0; i < std::min<size_t>(c.size(), 8); ++i) {
        const std::string from = c[i]["from"].get<std::string>(), value = c[i]["value"].get<std::string>();
        if (from == "human") conversation += "###Human: " + clean_media_tags(value);
        else if (from == "gpt") conversation += "###Assistant:" + value + (zh_ ? "</s>" : "");
      }
      conversation += "###";
      break;
    }
  }
  // The original falls back to the one-turn template when the conversation is still empty.
  if (conversation.empty())
    conversation = prefix_ + "###Human: " + instruction + "###Assistant:" + output + (zh_ ? "</s>\n###" : "\n###");
  if (zh_) {
    replace_all(conversation, "###Human: ", "\n###问题：");
    replace_all(conversation, "###Assistant:", "\n###答案：");
    replace_all(conversation, "</s>\n", "\n</s>");
  }
  return conversation;
}

}  // namespace cb
