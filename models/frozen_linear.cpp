#include "models/frozen_linear.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "framework/checkpoint/mapped_file.h"
#include "framework/error.h"
#include "framework/kernels/linear.h"
#include "framework/kernels/weight_memory.h"

namespace cb {
namespace {

using kernels::WeightFormat;

torch::Dtype dense_dtype(WeightFormat f) {
  switch (f) {
    case WeightFormat::f32: return torch::kFloat;
    case WeightFormat::bf16: return torch::kBFloat16;
    case WeightFormat::f16: return torch::kHalf;
    default: return torch::kByte;  // block formats: packed bytes
  }
}

// The block format whose packed row of `cols` features is `bytes` long (q8_0: 34, q4_0: 18 per block).
std::optional<WeightFormat> block_format_of(int64_t bytes, int64_t cols) {
  for (auto f : {WeightFormat::q8_0, WeightFormat::q4_0})
    if (cols % kernels::kQuantBlock == 0 && kernels::row_bytes(f, cols) == bytes) return f;
  return std::nullopt;
}

// x·Wᵀ with the gradient to x only; W (`data` with the format in saved_data) is a constant.
struct FrozenLinearFunction : torch::autograd::Function<FrozenLinearFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& data,
                               int64_t format, int64_t rows, int64_t cols) {
    ctx->save_for_backward({data});
    ctx->saved_data["format"] = format;
    ctx->saved_data["rows"] = rows;
    ctx->saved_data["cols"] = cols;
    return kernels::linear(x, {static_cast<WeightFormat>(format), rows, cols, data});
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const kernels::PackedWeight w{static_cast<WeightFormat>(ctx->saved_data["format"].toInt()),
                                  ctx->saved_data["rows"].toInt(), ctx->saved_data["cols"].toInt(),
                                  ctx->get_saved_variables()[0]};
    return {kernels::linear_input_grad(grads[0].contiguous(), w), {}, {}, {}, {}};
  }
};

constexpr int64_t kRowsPerSlice = 256;
static_assert(kRowsPerSlice % kernels::kPanelRows == 0, "a slice of rows must hold whole panels");

void copy_as_is(torch::Tensor dst, const torch::Tensor& src) { dst.copy_(src); }

// The rows of `src` [out, ...] converted into `dst` a slice at a time by `convert(dst_slice, src_slice)`,
// each slice's source pages given back once done (when `src` is a file's mapping): a load holds the
// model plus one slice, not plus one shard.
template <typename Convert = decltype(&copy_as_is)>
void copy_by_slices(const torch::Tensor& dst, const torch::Tensor& src, Convert convert = copy_as_is) {
  const auto s = src.contiguous();
  const auto row_bytes = static_cast<size_t>(s.numel() / std::max<int64_t>(1, s.size(0))) * s.element_size();
  for (int64_t r = 0; r < s.size(0); r += kRowsPerSlice) {
    const auto n = std::min(kRowsPerSlice, s.size(0) - r);
    const auto part = s.narrow(0, r, n);
    convert(dst.narrow(0, r, n), part);
    if (part.is_cpu()) MappedFile::release_pages(part.data_ptr(), static_cast<size_t>(n) * row_bytes);
  }
}

// Whether a linear op on x with these parameters has no autograd graph to record, so kernels::linear can
// run it: nothing records one, or neither x nor a parameter (undefined ones aside) asks for a gradient (a
// FrozenLinear's weight trains only where every parameter does, stage 0).
bool without_graph(const torch::Tensor& x, std::initializer_list<torch::Tensor> params) {
  if (!torch::GradMode::is_enabled()) return true;
  if (x.requires_grad()) return false;
  return std::none_of(params.begin(), params.end(), [](const auto& p) { return p.defined() && p.requires_grad(); });
}

}  // namespace

FrozenLinearImpl::FrozenLinearImpl(const FrozenLinearOptions& o)
    : in_features(o.in), out_features(o.out), block_format_(o.format), map_packed_(o.map_packed) {
  const bool block = kernels::is_block_format(o.format);
  if (block && o.in % kernels::kQuantBlock != 0)
    fail("{} weight [{}, {}]: the input width must be a multiple of {}", kernels::weight_format_name(o.format), o.out,
         o.in, kernels::kQuantBlock);
  torch::Tensor w;
  if (o.init) {
    // torch::nn::Linear's reset_parameters, so a model built fresh draws the same numbers as before.
    w = torch::empty({o.out, o.in}, torch::kFloat);
    torch::nn::init::kaiming_uniform_(w, std::sqrt(5.0));
    if (!block) w = w.to(dense_dtype(o.format));
    else if (!w.is_meta()) w = kernels::pack_weight(w, o.format).data;
    if (w.is_cpu()) w = kernels::copy_to_weight_storage(w);  // on huge pages, as a loader's weights
  }
  const std::vector<int64_t> shape{o.out, block ? kernels::row_bytes(o.format, o.in) : o.in};
  if (!w.defined())  // uninitialised storage of the format, for a loader to fill
    w = kernels::empty_weight_storage(shape, dense_dtype(o.format));
  else if (w.is_meta())  // its meta-device shape
    w = torch::empty(shape, torch::TensorOptions().dtype(dense_dtype(o.format)).device(w.device()));
  weight = register_parameter("weight", w, /*requires_grad=*/!block);
  if (block && o.init && weight.is_cpu() && kernels::preferred_layout(o.format) == kernels::BlockLayout::panels) {
    kernels::storage_to_panels(weight, o.format);
    layout_ = kernels::BlockLayout::panels;
  }
}

torch::Tensor FrozenLinearImpl::packed_rows() const {
  if (layout_ == kernels::BlockLayout::rows) return weight;
  auto rows = weight.detach().clone();
  kernels::storage_to_rows(rows, block_format_);
  return rows;
}

WeightFormat FrozenLinearImpl::format() const {
  switch (weight.scalar_type()) {
    case torch::kFloat: return WeightFormat::f32;
    case torch::kBFloat16: return WeightFormat::bf16;
    case torch::kHalf: return WeightFormat::f16;
    case torch::kByte: return block_format_;
    default: fail("FrozenLinear: weight of dtype {} is not a storage format", c10::toString(weight.scalar_type()));
  }
}

std::vector<torch::Tensor> forward_shared_input(const torch::Tensor& x, const std::vector<FrozenLinearImpl*>& layers) {
  bool shared = x.device().is_cpu();
  for (const auto* l : layers) shared = shared && without_graph(x, {l->weight});
  std::vector<torch::Tensor> ys;
  if (!shared) {
    for (auto* l : layers) ys.push_back(l->forward(x));
    return ys;
  }
  std::vector<kernels::PackedWeight> ws;
  for (const auto* l : layers) ws.push_back(l->packed());
  return kernels::linear_shared_input(x.to(torch::kFloat), ws);
}

kernels::PackedWeight FrozenLinearImpl::packed() const {
  return {format(), out_features, in_features, weight, layout_};
}

torch::Tensor FrozenLinearImpl::forward(const torch::Tensor& x) {
  const bool grad = torch::GradMode::is_enabled();
  if (grad && weight.requires_grad()) return torch::nn::functional::linear(x, weight);  // a weight that trains
  const auto in = x.device().is_cpu() && x.scalar_type() != torch::kFloat ? x.to(torch::kFloat) : x;
  const auto w = packed();
  if (without_graph(in, {weight})) return kernels::linear(in, w);
  if (kernels::is_block_format(w.format)) fail("{}", quantized_training_refusal(w.format));
  return FrozenLinearFunction::apply(in, w.data, static_cast<int64_t>(w.format), w.rows, w.cols);
}

void FrozenLinearImpl::set_weight(const torch::Tensor& w, const std::string& source) {
  torch::NoGradGuard no_grad;
  const auto target = format();
  const bool packed_source = w.scalar_type() == torch::kByte;
  auto source_format = kernels::WeightFormat::f32;  // a packed w's block format
  if (packed_source) {
    const auto found = block_format_of(w.dim() == 2 ? w.size(1) : -1, in_features);
    if (!found || w.dim() != 2 || w.size(0) != out_features)
      fail("{}: uint8 tensor of shape {} is neither a q8_0 nor a q4_0 packing of a [{}, {}] weight", source,
           fmt::join(w.sizes(), "x"), out_features, in_features);
    source_format = *found;
  }
  if (!packed_source && w.sizes() != torch::IntArrayRef({out_features, in_features}))
    fail("{}: tensor has shape {} but the model expects {}x{}", source, fmt::join(w.sizes(), "x"), out_features,
         in_features);
  const bool same_format = packed_source && source_format == target;
  if (same_format && w.device() == weight.device() && (map_packed_ || !w.is_cpu())) {
    weight.set_data(w.contiguous());  // used as stored: no copy
    stored_as_given_ = true;
    layout_ = kernels::BlockLayout::rows;
    return;
  }
  if (stored_as_given_ && weight.is_cpu())  // never write into a file's read-only mapping
    weight.set_data(kernels::empty_weight_storage(weight.sizes(), weight.scalar_type()));
  stored_as_given_ = false;
  // The layer's own copy takes the CPU's preferred layout, slice by slice while the slice is in cache.
  const auto layout = weight.is_cpu() ? kernels::preferred_layout(target) : kernels::BlockLayout::rows;
  const auto store = [&](torch::Tensor d, const torch::Tensor& packed_rows) {
    d.copy_(packed_rows);
    if (layout == kernels::BlockLayout::panels) kernels::storage_to_panels(d, target);
  };
  if (same_format) {
    copy_by_slices(weight, w, store);
  } else {
    const auto dense =
        packed_source ? kernels::unpack_weight({source_format, out_features, in_features, w.contiguous()}) : w;
    if (!kernels::is_block_format(target)) return copy_by_slices(weight, dense);  // cast into the existing storage
    // Packed a slice of rows at a time into the existing storage: no fp32 copy of the whole weight.
    copy_by_slices(weight, dense,
                   [&](torch::Tensor d, const torch::Tensor& s) { store(d, kernels::pack_weight(s, target).data); });
  }
  layout_ = layout;
}

void FrozenLinearImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  if (weight.scalar_type() == torch::kByte) torch::nn::Module::to(device, non_blocking);
  else torch::nn::Module::to(device, dtype, non_blocking);
}

void FrozenLinearImpl::to(torch::Dtype dtype, bool non_blocking) {
  if (weight.scalar_type() != torch::kByte) torch::nn::Module::to(dtype, non_blocking);
}

std::optional<kernels::WeightFormat> quantized_format(const torch::nn::Module& module) {
  std::vector<const torch::nn::Module*> all{&module};  // modules(true) needs a module held by a shared_ptr
  for (const auto& m : module.modules(/*include_self=*/false)) all.push_back(m.get());
  for (const auto* m : all)
    if (const auto* f = dynamic_cast<const FrozenLinearImpl*>(m); f && kernels::is_block_format(f->format()))
      return f->format();
  return std::nullopt;
}

std::string quantized_training_refusal(kernels::WeightFormat format) {
  const auto name = kernels::weight_format_name(format);
  return fmt::format(
      "the LLaMA is {} (model.llama_precision / model.low_resource), which serves inference only: training "
      "through a {} LLaMA is not supported; set model.llama_precision to fp32, bf16 or fp16 and "
      "model.low_resource to False to train",
      name, name);
}

LoadReport load_state_dict_into_frozen(torch::nn::Module& module, const StateDict& sd, bool strict,
                                       const std::string& source) {
  std::map<std::string, FrozenLinearImpl*> frozen;  // "<path>.weight" -> its layer
  for (const auto& m : module.named_modules())
    if (auto* f = m.value()->as<FrozenLinearImpl>()) frozen[m.key().empty() ? "weight" : m.key() + ".weight"] = f;
  StateDict rest;
  std::set<std::string> set;
  for (const auto& kv : sd) {
    auto it = frozen.find(kv.key());
    if (it == frozen.end()) {
      rest.insert(kv.key(), kv.value());
      continue;
    }
    it->second->set_weight(kv.value(), source + ": " + kv.key());
    set.insert(kv.key());
  }
  auto report = load_state_dict(module, rest, /*strict=*/false, source);
  report.loaded += set.size();
  std::vector<std::string> missing;
  for (auto& k : report.missing)
    if (!set.count(k)) missing.push_back(k);
  report.missing = std::move(missing);
  if (strict && (!report.missing.empty() || !report.unexpected.empty()))
    fail("{}: strict load failed: missing keys [{}], unexpected keys [{}]", source, fmt::join(report.missing, ", "),
         fmt::join(report.unexpected, ", "));
  return report;
}

torch::Tensor dense_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const bool cpu_fp32 = x.is_cpu() && weight.is_cpu() && x.scalar_type() == torch::kFloat;
  const auto w_type = weight.scalar_type();
  if (without_graph(x, {weight, bias}) && cpu_fp32 && weight.dim() == 2 && weight.is_contiguous() &&
      (w_type == torch::kFloat || w_type == torch::kBFloat16)) {
    const kernels::PackedWeight w{w_type == torch::kFloat ? WeightFormat::f32 : WeightFormat::bf16, weight.size(0),
                                  weight.size(1), weight};
    auto y = kernels::linear(x, w);
    return bias.defined() ? y.add_(bias) : y;
  }
  if (cpu_fp32 && w_type != torch::kFloat)
    return torch::nn::functional::linear(x, weight.to(torch::kFloat), bias.defined() ? bias.to(torch::kFloat) : bias);
  return torch::nn::functional::linear(x, weight, bias);
}

}  // namespace cb
