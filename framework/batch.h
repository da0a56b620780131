// One training/eval batch as the loaders produce it and ChatBridge consumes it: the original's
// `samples` dict. Shared by datasets/ (producer) and models/ (consumer), which know nothing of each other.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace cb {

struct Batch {
  std::string task;                       // "ti", "ta", "tva", "tv-cap%ti-cap", ... (modality routing)
  torch::Tensor image;                    // [B,3,S,S] or [B,n,3,S,S] (video frames), normalised pixels
  torch::Tensor audio;                    // [B,n,T,F] normalised fbank slices
  std::vector<std::string> text_input;    // stage 1 captions
  std::vector<std::string> conversation;  // stage 2 conversations with <query> markers
  std::vector<std::string> ids;           // sample ids (for eval results and bad-sample reports)
  int64_t size() const;                   // B
};

}  // namespace cb
