// Reading the checkpoint files users have, whatever their format:
// safetensors, torch.save zip and legacy files (.pth/.pt/.bin), and sharded Hugging Face directories.
#pragma once
#include <filesystem>
#include <functional>

#include "framework/checkpoint/state_dict.h"

namespace cb {

// A whole checkpoint file as a state dict. For torch.save files the tensors are taken from the
// pickled object: the root itself when it is a state dict, else its entry `entry` (e.g. "model");
// an empty `entry` means "the root". Throws cb::Error naming the file and the problem.
StateDict load_state_dict_file(const std::filesystem::path& path, const std::string& entry = "");

// A Hugging Face model directory: model.safetensors(.index.json) or pytorch_model.bin(.index.json).
StateDict load_hf_directory(const std::filesystem::path& dir);

// The same directory one file at a time: `fn(tensors, file)` gets each shard's tensors (those its
// index lists; safetensors tensors alias the file's mapping) and the shard is released when fn
// returns, so a loader that moves them into a model holds one shard at a time.
void for_each_hf_shard(const std::filesystem::path& dir,
                       const std::function<void(const StateDict&, const std::filesystem::path&)>& fn);

}  // namespace cb
