// Text-only training data for a causal LM (task `lm_pretrain`): the texts the LLaMA will be fed in
// ChatBridge's stages 1 and 2, read from the same data-options JSONs (run.valor_data_opts_path of
// those stages) without their media:
//   * a stage-1 group (task without '-': "ti", "ta", ...): pre_caption(caption) + caption_end_sym,
//     the caption target ChatBridge appends after its query slots;
//   * a stage-2 group ("ti-cap", "tva-conv", ...): the MULTIS conversation TASKDataset builds, with
//     its <query> markers kept (template and QA choices drawn per epoch and sample); lm_pretrain
//     tokenises it piece by piece as ChatBridge does and drops the feature slots.
// Samples are shuffled per epoch (seed + epoch) and dealt to ranks in rank-major batches, so
// (seed, rank, world size, state) fixes every batch and a restored state continues exactly.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "datasets/batch_source.h"

namespace cb {

struct LmCorpusOptions {
  std::vector<std::filesystem::path> data_opts;  // valor data-options JSONs
  std::filesystem::path prompt_path;             // task_prompt.json (stage-2 cap/qa/ocr groups need it)
  std::string caption_end_sym = "\n";            // ChatBridge's stage-1 end_sym
  // Each <query> marker of a conversation (where ChatBridge will put an item's features) holds the
  // stage-1 caption of that media item instead, as text: the language model learns to read what sits
  // in those slots. A tiny LLaMA learns no such reading from text alone (a real Vicuna brings it), and
  // the bridge can only make it answer from the media if it does. Stage-1 captions stay as they are
  // (their slot comes first and leads straight into the caption: filling it taught the LLaMA to say
  // everything twice). Slots of items without a stage-1 caption stay empty.
  bool fill_query_slots = false;
  int64_t batch_size = 8;  // per rank
  int64_t seed = 42;
  int rank = 0, world_size = 1;
};

// Batches with `text_input` (one text per sample) and `ids` ("<annotation file>:<record>").
std::unique_ptr<BatchSource> make_lm_corpus_source(const LmCorpusOptions& opts);

}  // namespace cb
