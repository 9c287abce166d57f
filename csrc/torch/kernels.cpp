// libfusionrt_torch: fusionrt's ops registered with the PyTorch dispatcher in C++, so a call costs a
// dispatch and the kernel instead of a trip through a Python kernel (~10 us, as much as the whole op at
// batch 1). python/fusionrt/ops.py defines the schemas, fake implementations and autograd, loads this
// library when it was built against the running torch, and registers Python kernels otherwise.
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <vector>

#include "ops/attention_op.h"
#include "ops/concat_layernorm_op.h"
#include "tensor_args.h"

#if FUSIONRT_TORCH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace fusionrt::torch_ops {
namespace {

// Runs a checked op call (ops/*_op.h) into a new tensor with `options` (dtype, device): on the CPU, or
// on torch's current stream of its GPU.
template <typename Call>
at::Tensor run_into_new_tensor(Call& call, const at::TensorOptions& options) {
  at::Tensor output = at::empty(call.output_shape(), options);
  call.set_output(tensor_arg(output, "out"));
#if FUSIONRT_TORCH_CUDA
  if (output.is_cuda()) {
    const c10::cuda::CUDAGuard device_guard(output.device());
    call.run(reinterpret_cast<intptr_t>(c10::cuda::getCurrentCUDAStream(output.get_device()).stream()));
    return output;
  }
#endif
  call.run(0);
  return output;
}

at::Tensor fused_concat_layernorm(at::TensorList inputs, const std::optional<at::Tensor>& weight,
                                  const std::optional<at::Tensor>& bias, double eps) {
  return raising_python_errors([&] {
    std::vector<at::Tensor> tensors;
    std::vector<TensorArg> args;
    tensors.reserve(inputs.size());
    args.reserve(inputs.size());
    std::vector<const TensorArg*> input_args;
    for (size_t i = 0; i < inputs.size(); ++i) {
      tensors.push_back(with_contiguous_features(inputs[i]));
      args.push_back(tensor_arg(tensors.back(), "inputs[" + std::to_string(i) + "]"));
      input_args.push_back(&args.back());
    }
    std::optional<at::Tensor> weight_tensor, bias_tensor;
    std::optional<TensorArg> weight_arg, bias_arg;
    if (weight) weight_arg = tensor_arg(weight_tensor.emplace(with_contiguous_features(*weight)), "weight");
    if (bias) bias_arg = tensor_arg(bias_tensor.emplace(with_contiguous_features(*bias)), "bias");
    ConcatLayerNormCall call(input_args, weight_arg ? &*weight_arg : nullptr, bias_arg ? &*bias_arg : nullptr, eps);
    return run_into_new_tensor(call, tensors.at(0).options());
  });
}

at::Tensor multihead_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::optional<at::Tensor>& key_padding_mask, std::optional<double> scale) {
  return raising_python_errors([&] {
    const at::Tensor q_tensor = with_contiguous_features(q);
    const at::Tensor k_tensor = with_contiguous_features(k);
    const at::Tensor v_tensor = with_contiguous_features(v);
    std::optional<at::Tensor> mask_tensor;
    std::optional<ArrayArg> mask;
    if (key_padding_mask) {
      mask = mask_arg(mask_tensor.emplace(with_contiguous_features(*key_padding_mask)), "key_padding_mask");
    }
    AttentionCall call(tensor_arg(q_tensor, "q"), tensor_arg(k_tensor, "k"), tensor_arg(v_tensor, "v"),
                       mask ? &*mask : nullptr, scale);
    return run_into_new_tensor(call, q_tensor.options());
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(fusionrt, CPU, m) {
  m.impl("fused_concat_layernorm", &fused_concat_layernorm);
  m.impl("multihead_attention", &multihead_attention);
}

#if FUSIONRT_TORCH_CUDA
TORCH_LIBRARY_IMPL(fusionrt, CUDA, m) {
  m.impl("fused_concat_layernorm", &fused_concat_layernorm);
  m.impl("multihead_attention", &multihead_attention);
}
#endif

}  // namespace fusionrt::torch_ops
