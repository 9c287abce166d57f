#include "concat_layernorm_op.h"

namespace fusionrt {
namespace {

using Contract = ConcatLayerNormContract;

void expect_vector(const TensorArg& arg, int64_t length, const char* what) {
  arg.expect_ndim(1, "(features,)");
  if (arg.dim(0) != length) {
    throw ValueError(arg.name + " has " + std::to_string(arg.dim(0)) + " elements, expected " +
                     std::to_string(length) + " (" + what + ")");
  }
  arg.expect_inner_contiguous();
}

// Rows of a one-row array may have any stride; the kernels read the width instead.
int64_t row_stride(const TensorArg& arg) { return arg.dim(0) > 1 ? arg.strides[0] : arg.dim(1); }

}  // namespace

ConcatLayerNormCall::ConcatLayerNormCall(const std::vector<const TensorArg*>& inputs, const TensorArg* weight,
                                         const TensorArg* bias, double eps) {
  const auto count = static_cast<int>(inputs.size());
  if (count < Contract::kMinInputs || count > Contract::kMaxInputs) {
    throw ValueError("expected " + std::to_string(Contract::kMinInputs) + " to " + std::to_string(Contract::kMaxInputs) +
                     " inputs, got " + std::to_string(count));
  }
  if (!Contract::valid_eps(eps)) throw ValueError("eps must be > 0 and finite, got " + std::to_string(eps));
  const TensorArg& first = *inputs[0];
  params_.num_inputs = count;
  params_.eps = eps;
  for (int i = 0; i < count; ++i) {
    const TensorArg& input = *inputs[i];
    input.expect_ndim(2, "(batch, features)");
    input.expect_inner_contiguous();
    if (i > 0) {
      expect_same_dtype_and_device(input, first);
      if (input.dim(0) != first.dim(0)) {
        throw ValueError(input.name + " has batch " + std::to_string(input.dim(0)) + ", expected " +
                         std::to_string(first.dim(0)) + " (the batch of " + first.name + ")");
      }
    }
    params_.inputs[i] = input.data;
    params_.widths[i] = input.dim(1);
    params_.row_strides[i] = row_stride(input);
  }
  output_shape_ = evaluate_output_shape(Contract::kOutputShape, count,
                                        [&](int32_t input, int32_t axis) { return inputs[input]->dim(axis); });
  params_.rows = first.dim(0);
  params_.dtype = first.dtype;
  for (const auto& [arg, field] : {std::pair{weight, &params_.weight}, std::pair{bias, &params_.bias}}) {
    if (arg == nullptr) continue;
    expect_same_dtype_and_device(*arg, first);
    expect_vector(*arg, output_shape_[1], "the total width of the inputs");
    *field = arg->data;
  }
  first_ = first;
  first_.data = nullptr;
}

void ConcatLayerNormCall::set_output(const TensorArg& out) {
  expect_output(out, first_, output_shape_, "(batch, total features)", shape_str(output_shape_));
  params_.output = out.data;
  params_.output_row_stride = row_stride(out);
}

void ConcatLayerNormCall::run(intptr_t cuda_stream) const {
  if (first_.device.is_cpu()) return concat_layernorm_cpu(params_);
#if FUSIONRT_WITH_CUDA
  concat_layernorm_cuda(params_, reinterpret_cast<cudaStream_t>(cuda_stream));
#else
  (void)cuda_stream;
  throw_built_without_cuda(first_);
#endif
}

}  // namespace fusionrt
