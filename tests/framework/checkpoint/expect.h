// Checking loaded checkpoints against the .expect.json descriptions in tests/golden/ckpt (layout in
// tests/golden/ckpt/README.md): the walk of the object tree, every tensor's layout and value sums.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "framework/checkpoint/pickle.h"

namespace cb::test {

std::filesystem::path ckpt_dir();  // <golden dir>/ckpt
// Every *.expect.json below ckpt_dir(), parsed, with "file" resolved to a path ("_path").
std::vector<nlohmann::json> ckpt_expectations();
// Fixture sets name their files differently (checkpoint_<epoch>.pth, ...): tests pick files by content.
// The expectations whose file lists a tensor at `path` (root keys bare, e.g. "model/query_tokens").
std::vector<nlohmann::json> ckpt_expectations_with_tensor(const std::string& path);

struct TensorAt {
  std::string path;
  torch::Tensor tensor;
  bool is_parameter = false;
};

// Depth-first walk of a pickled tree as the README describes it: containers, tensors and leaves,
// each in pickle order, with paths built from keys joined by '/'.
struct Walk {
  nlohmann::json containers = nlohmann::json::array(), leaves = nlohmann::json::array();
  std::vector<TensorAt> tensors;
};
Walk walk(const pickle::Value* root);

// Compares one tensor with its expectation (dtype, shape, strides, offset, storage numel, flags,
// sum/sumsq/wsum/first); `what` names it in failures.
void check_tensor(const TensorAt& t, const nlohmann::json& expect, const std::string& what);
// Tensors with equal expected storage_id share one storage, different ids different storages.
void check_storage_sharing(const std::vector<TensorAt>& tensors, const nlohmann::json& expect, const std::string& what);

std::string dtype_name(torch::ScalarType t);  // "float32", "bfloat16", ... as the expect files spell them

}  // namespace cb::test
