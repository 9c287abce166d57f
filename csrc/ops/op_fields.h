// The vocabulary in which every op contract states its attributes: fields as TensorRT plugins
// declare, receive and serialise them (nvinfer1::PluginField, without TensorRT types), and the
// parsing every plugin creator and fusionrt._C share. tensorrt/common/PluginAdapters.h converts
// these to and from TensorRT's types.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace fusionrt {

// The TensorRT plugin namespace and ONNX custom-op domain of every fusionrt op.
inline constexpr char kPluginNamespace[] = "fusionrt";

// Same numbering as nvinfer1::PluginFieldType (PluginAdapters.cpp asserts it), so a plugin field's
// type converts with a cast.
enum class FieldType : int32_t {
  kFloat16 = 0,
  kFloat32 = 1,
  kFloat64 = 2,
  kInt8 = 3,
  kInt16 = 4,
  kInt32 = 5,
  kChar = 6,
  kDims = 7,
  kUnknown = 8,
  kBFloat16 = 9,
  kInt64 = 10,
  kFloat8 = 11,
  kInt4 = 12,
};

// numpy's spelling ("float32", "int32", ...); how messages and fusionrt._C name field types.
const char* field_type_name(FieldType type);

// One plugin field as TensorRT hands it over: `length` elements of `type` at `data`.
struct RawField {
  const char* name;
  FieldType type;
  const void* data;
  int32_t length;
};

// An attribute of an op: a field its plugin creator declares (getFieldNames) and its parser expects.
struct FieldSpec {
  const char* name;
  FieldType type;
};

// "'name'": how messages name fields.
std::string quoted(const char* name);

// The field given for each of `specs[0, nb_specs)`, in the specs' order, whatever order `fields` come
// in. Throws std::invalid_argument for an invalid collection or a field that is unnamed, unknown to
// `plugin`, given twice or missing.
std::vector<const RawField*> match_fields(const RawField* fields, int32_t count, const FieldSpec* specs,
                                          size_t nb_specs, const char* plugin);

// match_fields for an op contract: the fields `Contract::kFields` names, in that order.
template <typename Contract>
std::vector<const RawField*> match_contract_fields(const RawField* fields, int32_t count) {
  return match_fields(fields, count, Contract::kFields.data(), Contract::kFields.size(), Contract::kName);
}

// Throws std::invalid_argument unless `field` is a single value of type `expected` with data.
void expect_scalar(const RawField& field, FieldType expected);

// The single value of `field`; copied out with memcpy, as TensorRT gives no alignment guarantee for
// `data`.
template <typename T>
T read_scalar(const RawField& field, FieldType expected) {
  expect_scalar(field, expected);
  T value;
  std::memcpy(&value, field.data, sizeof value);
  return value;
}

// An int32 0 / 1 flag field.
int32_t read_flag(const RawField& field, FieldType type);

// The fields that serialise a config: each spec's single value at `values[i]`.
template <size_t N>
std::array<RawField, N> raw_fields(const std::array<FieldSpec, N>& specs, const std::array<const void*, N>& values) {
  std::array<RawField, N> fields;
  for (size_t i = 0; i < N; ++i) fields[i] = RawField{specs[i].name, specs[i].type, values[i], 1};
  return fields;
}

}  // namespace fusionrt
