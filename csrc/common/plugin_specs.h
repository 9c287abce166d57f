// Names, versions and attribute fields of fusionrt's TensorRT plugins. The ONNX exporter reads them
// through fusionrt._C.plugin_specs(), the plugin creators use them directly: one spelling for both.
#pragma once

namespace fusionrt::specs {

inline constexpr char kPluginNamespace[] = "fusionrt";

// Node inputs: x_0 .. x_{num_inputs-1} shaped (batch, d_i), then weight if has_weight, then bias if
// has_bias (each (sum d_i,)). One output (batch, sum d_i).
struct ConcatLayerNorm {
  static constexpr char kName[] = "FusionrtConcatLayerNorm";
  static constexpr char kVersion[] = "1";
  static constexpr char kFieldEps[] = "eps";                // float32
  static constexpr char kFieldNumInputs[] = "num_inputs";   // int32, 2..4
  static constexpr char kFieldHasWeight[] = "has_weight";   // int32, 0 or 1
  static constexpr char kFieldHasBias[] = "has_bias";       // int32, 0 or 1
};

// Node inputs: q (batch, heads, Lq, head_dim), k and v (batch, heads, Lk, head_dim), then the key
// padding mask (batch, Lk) bool, True = attend, if has_mask. One output shaped like q; rows with no
// attended key are zeros.
struct MultiheadAttention {
  static constexpr char kName[] = "FusionrtMultiheadAttention";
  static constexpr char kVersion[] = "1";
  static constexpr char kFieldScale[] = "scale";        // float32, multiplies q kᵀ
  static constexpr char kFieldHasMask[] = "has_mask";   // int32, 0 or 1
};

}  // namespace fusionrt::specs
