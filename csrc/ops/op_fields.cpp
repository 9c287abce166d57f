#include "op_fields.h"

#include <stdexcept>

namespace fusionrt {

const char* field_type_name(FieldType type) {
  switch (type) {
    case FieldType::kFloat16: return "float16";
    case FieldType::kFloat32: return "float32";
    case FieldType::kFloat64: return "float64";
    case FieldType::kInt8: return "int8";
    case FieldType::kInt16: return "int16";
    case FieldType::kInt32: return "int32";
    case FieldType::kChar: return "char";
    case FieldType::kDims: return "dims";
    case FieldType::kUnknown: return "unknown";
    case FieldType::kBFloat16: return "bfloat16";
    case FieldType::kInt64: return "int64";
    case FieldType::kFloat8: return "float8";
    case FieldType::kInt4: return "int4";
  }
  return "unsupported";
}

std::string quoted(const char* name) { return std::string("'") + name + "'"; }

std::vector<const RawField*> match_fields(const RawField* fields, int32_t count, const FieldSpec* specs,
                                          size_t nb_specs, const char* plugin) {
  if (count < 0 || (count > 0 && fields == nullptr)) {
    throw std::invalid_argument("invalid field collection: " + std::to_string(count) + " fields");
  }
  std::vector<const RawField*> found(nb_specs, nullptr);
  for (int32_t i = 0; i < count; ++i) {
    const RawField& field = fields[i];
    if (field.name == nullptr) throw std::invalid_argument("field " + std::to_string(i) + " has no name");
    size_t which = 0;
    while (which < nb_specs && std::strcmp(field.name, specs[which].name) != 0) ++which;
    if (which == nb_specs) {
      std::string known;
      for (size_t s = 0; s < nb_specs; ++s) known += (known.empty() ? "" : ", ") + quoted(specs[s].name);
      throw std::invalid_argument("unknown field " + quoted(field.name) + " for " + plugin + ", expected " + known);
    }
    if (found[which] != nullptr) throw std::invalid_argument("field " + quoted(field.name) + " is given twice");
    found[which] = &field;
  }
  for (size_t which = 0; which < nb_specs; ++which) {
    if (found[which] == nullptr) {
      throw std::invalid_argument("missing field " + quoted(specs[which].name) + " for " + plugin);
    }
  }
  return found;
}

void expect_scalar(const RawField& field, FieldType expected) {
  if (field.type != expected) {
    throw std::invalid_argument("field " + quoted(field.name) + " has type " + field_type_name(field.type) +
                                ", expected " + field_type_name(expected));
  }
  if (field.length != 1) {
    throw std::invalid_argument("field " + quoted(field.name) + " has " + std::to_string(field.length) +
                                " values, expected 1");
  }
  if (field.data == nullptr) throw std::invalid_argument("field " + quoted(field.name) + " has no data");
}

int32_t read_flag(const RawField& field, FieldType type) {
  const auto value = read_scalar<int32_t>(field, type);
  if (value != 0 && value != 1) {
    throw std::invalid_argument("field " + quoted(field.name) + " is " + std::to_string(value) + ", expected 0 or 1");
  }
  return value;
}

}  // namespace fusionrt
