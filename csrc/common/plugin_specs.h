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

}  // namespace fusionrt::specs
