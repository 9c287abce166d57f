// The op contracts' field parsing and build-time shape rules (csrc/ops/*_contract.h), which the
// TensorRT plugins apply, exposed to Python so they are tested on machines without TensorRT, and so
// the ONNX exporter can check attributes against the same rules the plugins apply. A field is (name, numpy array): the array's dtype is the
// field type and its size the field length, as in nvinfer1::PluginField.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <string>
#include <vector>

#include "ops.h"
#include "ops/attention_contract.h"
#include "ops/concat_layernorm_contract.h"

namespace py = pybind11;

namespace fusionrt::bindings {
namespace {

FieldType field_type_of(const py::array& array, const std::string& name) {
  const py::dtype dtype = array.dtype();
  const char kind = dtype.kind();
  const auto size = dtype.itemsize();
  if (kind == 'f' && size == 2) return FieldType::kFloat16;
  if (kind == 'f' && size == 4) return FieldType::kFloat32;
  if (kind == 'f' && size == 8) return FieldType::kFloat64;
  if (kind == 'i' && size == 1) return FieldType::kInt8;
  if (kind == 'i' && size == 2) return FieldType::kInt16;
  if (kind == 'i' && size == 4) return FieldType::kInt32;
  if (kind == 'i' && size == 8) return FieldType::kInt64;
  if (kind == 'S') return FieldType::kChar;
  throw py::type_error("field '" + name + "' has numpy dtype " + py::str(dtype).cast<std::string>() +
                       ", which has no TensorRT plugin field type");
}

// Keeps the names and arrays alive while the RawFields point into them.
struct Fields {
  std::vector<std::string> names;
  std::vector<py::array> arrays;
  std::vector<RawField> raw;
};

Fields to_fields(const std::vector<std::pair<std::string, py::object>>& items) {
  Fields fields;
  fields.names.reserve(items.size());
  for (const auto& [name, value] : items) {
    fields.names.push_back(name);
    fields.arrays.push_back(py::array::ensure(value, py::array::c_style));
    if (!fields.arrays.back()) throw py::type_error("field '" + name + "' is not convertible to a numpy array");
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const py::array& array = fields.arrays[i];
    const FieldType type = field_type_of(array, fields.names[i]);
    // kChar fields count characters, like a C string's bytes.
    const auto length = static_cast<int32_t>(type == FieldType::kChar ? array.nbytes() : array.size());
    fields.raw.push_back(RawField{fields.names[i].c_str(), type, array.data(), length});
  }
  return fields;
}

using FieldItems = std::vector<std::pair<std::string, py::object>>;

// `parser` (a parse_*_fields rule) over fields given as (name, numpy array) pairs.
template <typename Parser>
auto parse(const FieldItems& items, Parser parser) {
  const Fields fields = to_fields(items);
  return parser(fields.raw.data(), static_cast<int32_t>(fields.raw.size()));
}

ConcatLayerNormConfig parse_concat_layernorm(const FieldItems& items) {
  return parse(items, parse_concat_layernorm_fields);
}

MultiheadAttentionConfig parse_multihead_attention(const FieldItems& items) {
  return parse(items, parse_multihead_attention_fields);
}

py::dict config_dict(const ConcatLayerNormConfig& config) {
  return py::dict(py::arg("eps") = config.eps, py::arg("num_inputs") = config.num_inputs,
                  py::arg("has_weight") = bool(config.has_weight), py::arg("has_bias") = bool(config.has_bias),
                  py::arg("nb_node_inputs") = config.nb_node_inputs());
}

py::dict config_dict(const MultiheadAttentionConfig& config) {
  return py::dict(py::arg("scale") = config.scale, py::arg("has_mask") = bool(config.has_mask),
                  py::arg("nb_node_inputs") = config.nb_node_inputs());
}

py::array field_array(const RawField& field) {
  switch (field.type) {
    case FieldType::kFloat32: return py::array_t<float>(field.length, static_cast<const float*>(field.data));
    case FieldType::kInt32: return py::array_t<int32_t>(field.length, static_cast<const int32_t*>(field.data));
    default: throw py::type_error(std::string("no numpy conversion for field type ") + field_type_name(field.type));
  }
}

// (name, numpy array) pairs of serialised fields.
template <size_t N>
py::list field_list(const std::array<RawField, N>& fields) {
  py::list list;
  for (const RawField& field : fields) list.append(py::make_tuple(field.name, field_array(field)));
  return list;
}

}  // namespace

void bind_plugin_fields(py::module_& m) {
  m.def(
      "parse_concat_layernorm_fields",
      [](const std::vector<std::pair<std::string, py::object>>& fields) {
        return config_dict(parse_concat_layernorm(fields));
      },
      py::arg("fields"),
      "Parse and validate FusionrtConcatLayerNorm plugin fields, given as (name, numpy array) pairs, exactly as "
      "the TensorRT plugin creator does. Returns {eps, num_inputs, has_weight, has_bias, nb_node_inputs}; raises "
      "ValueError naming the field that is missing, mistyped or out of range.");
  m.def(
      "concat_layernorm_plugin_fields",
      [](float eps, int32_t num_inputs, bool has_weight, bool has_bias) {
        ConcatLayerNormConfig config;
        config.eps = eps;
        config.num_inputs = num_inputs;
        config.has_weight = has_weight;
        config.has_bias = has_bias;
        return field_list(concat_layernorm_fields(config));
      },
      py::arg("eps"), py::arg("num_inputs"), py::arg("has_weight"), py::arg("has_bias"),
      "The (name, numpy array) fields a FusionrtConcatLayerNorm plugin serialises for these attributes.");
  m.def(
      "concat_layernorm_output_shape",
      [](const std::vector<std::pair<std::string, py::object>>& fields,
         const std::vector<std::vector<int64_t>>& input_shapes) {
        return py::tuple(py::cast(concat_layernorm_output_shape(parse_concat_layernorm(fields), input_shapes)));
      },
      py::arg("fields"), py::arg("input_shapes"),
      "Output shape (batch, sum d_i) of a FusionrtConcatLayerNorm node with these fields and input shapes, by the "
      "plugin's rules; -1 marks a size unknown until runtime. Raises ValueError on a mismatch.");
  m.def(
      "parse_multihead_attention_fields",
      [](const FieldItems& fields) { return config_dict(parse_multihead_attention(fields)); }, py::arg("fields"),
      "Parse and validate FusionrtMultiheadAttention plugin fields, given as (name, numpy array) pairs, exactly as "
      "the TensorRT plugin creator does. Returns {scale, has_mask, nb_node_inputs}; raises ValueError naming the "
      "field that is missing, mistyped or out of range.");
  m.def(
      "multihead_attention_plugin_fields",
      [](float scale, bool has_mask) {
        MultiheadAttentionConfig config;
        config.scale = scale;
        config.has_mask = has_mask;
        return field_list(multihead_attention_fields(config));
      },
      py::arg("scale"), py::arg("has_mask"),
      "The (name, numpy array) fields a FusionrtMultiheadAttention plugin serialises for these attributes.");
  m.def(
      "multihead_attention_output_shape",
      [](const FieldItems& fields, const std::vector<std::vector<int64_t>>& input_shapes) {
        return py::tuple(py::cast(multihead_attention_output_shape(parse_multihead_attention(fields), input_shapes)));
      },
      py::arg("fields"), py::arg("input_shapes"),
      "Output shape (batch, heads, Lq, head_dim) of a FusionrtMultiheadAttention node with these fields and input "
      "shapes (q, k, v, then the mask when has_mask), by the plugin's rules; -1 marks a size unknown until runtime. "
      "Raises ValueError on a mismatch.");
}

}  // namespace fusionrt::bindings
