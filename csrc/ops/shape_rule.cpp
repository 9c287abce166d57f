#include "shape_rule.h"

#include <stdexcept>

namespace fusionrt {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    text += (i ? ", " : "") + (shape[i] == kUnknownDim ? std::string("?") : std::to_string(shape[i]));
  }
  return text + (shape.size() == 1 ? ",)" : ")");
}

void agree(int64_t& agreed, int64_t size, const std::string& what, const std::string& expected_from) {
  if (size == kUnknownDim) return;
  if (agreed != kUnknownDim && agreed != size) {
    throw std::invalid_argument(what + " is " + std::to_string(size) + ", expected " + std::to_string(agreed) + " (" +
                                expected_from + ")");
  }
  agreed = size;
}

}  // namespace fusionrt
