// The op contracts (csrc/ops/*_contract.h) as data for Python: fusionrt.ops checks and shapes its
// torch ops' fake tensors with them, fusionrt.onnx_ops declares its plugin nodes' attributes with
// them, and the TensorRT engine builder names the plugins by them.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "ops.h"
#include "ops/attention_contract.h"
#include "ops/concat_layernorm_contract.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

// The plugin's identity and attributes: {name, version, fields: {field: field}, field_types: {field:
// "float32" | "int32" | ...}}, fields in serialisation order.
template <typename Contract>
py::dict plugin_spec() {
  py::dict fields, field_types;
  for (const FieldSpec& field : Contract::kFields) {
    fields[field.name] = field.name;
    field_types[field.name] = field_type_name(field.type);
  }
  return py::dict(py::arg("name") = Contract::kName, py::arg("version") = Contract::kVersion,
                  py::arg("fields") = fields, py::arg("field_types") = field_types);
}

// What every op's contract states: plugin, dtypes, and the output shape rule as (input_dim,
// first_input, count) triples, count None for every data input from first_input on.
template <typename Contract>
py::dict contract_dict(const char* op) {
  py::list dtypes, output_shape;
  for (const DType dtype : Contract::kDTypes) dtypes.append(dtype_name(dtype));
  for (const OutputDim& dim : Contract::kOutputShape) {
    const py::object count = dim.count == kThroughLastDataInput ? py::object(py::none()) : py::int_(dim.count);
    output_shape.append(py::make_tuple(dim.input_dim, dim.first_input, count));
  }
  return py::dict(py::arg("op") = op, py::arg("plugin") = plugin_spec<Contract>(), py::arg("dtypes") = dtypes,
                  py::arg("output_shape") = output_shape);
}

py::dict op_contracts() {
  py::dict contracts;
  py::dict concat = contract_dict<ConcatLayerNormContract>("fused_concat_layernorm");
  concat["min_inputs"] = ConcatLayerNormContract::kMinInputs;
  concat["max_inputs"] = ConcatLayerNormContract::kMaxInputs;
  contracts["concat_layernorm"] = concat;
  py::dict attention = contract_dict<MultiheadAttentionContract>("multihead_attention");
  attention["max_head_dim"] = MultiheadAttentionContract::kMaxHeadDim;
  contracts["multihead_attention"] = attention;
  return contracts;
}

// {namespace, <op key>: plugin_spec}: the plugins' identities, for the ONNX exporter and the engine builder.
py::dict plugin_specs() {
  py::dict specs;
  specs["namespace"] = kPluginNamespace;
  for (const auto& [key, contract] : op_contracts()) specs[key] = contract["plugin"];
  return specs;
}

}  // namespace

void bind_op_contracts(py::module_& m) {
  m.def("op_contracts", &op_contracts,
        "Each fused op's contract, keyed 'concat_layernorm' / 'multihead_attention': {op (the torch op's name), "
        "plugin (as in plugin_specs), dtypes, output_shape: [(input_dim, first_input, count)] (output dim j is "
        "the sum of input_dim over the data inputs [first_input, first_input + count), count None: through the "
        "last), and the op's limits: min_inputs / max_inputs, max_head_dim}.");
  m.def("plugin_specs", &plugin_specs,
        "TensorRT plugin names, versions and fields of fusionrt's ops: {namespace, concat_layernorm: {name, "
        "version, fields, field_types}, multihead_attention: {...}}.");
}

}  // namespace fusionrt::bindings
