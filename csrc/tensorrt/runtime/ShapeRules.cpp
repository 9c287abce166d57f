#include "tensorrt/runtime/ShapeRules.h"

#include <algorithm>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace fusionrt::trt {

std::string shapeString(Shape const& shape) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

int64_t volume(Shape const& shape) {
  int64_t count = 1;
  for (int64_t const dim : shape) {
    if (dim < 0) throw std::invalid_argument("shape " + shapeString(shape) + " has an unresolved dim");
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) {
      throw std::invalid_argument("shape " + shapeString(shape) + " has more elements than int64 counts");
    }
    count *= dim;
  }
  return count;
}

std::string shapeSignature(std::vector<Shape> const& shapes) {
  std::string key;
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (i) key += '|';
    for (size_t d = 0; d < shapes[i].size(); ++d) {
      if (d) key += 'x';
      key += std::to_string(shapes[i][d]);
    }
  }
  return key;
}

void checkProfileShape(std::string const& tensor, Shape const& shape, Shape const& min, Shape const& max) {
  bool fits = shape.size() == min.size() && shape.size() == max.size();
  for (size_t i = 0; fits && i < shape.size(); ++i) fits = min[i] <= shape[i] && shape[i] <= max[i];
  if (fits) return;
  std::ostringstream expected;
  expected << "(";
  for (size_t i = 0; i < min.size() && i < max.size(); ++i) {
    expected << (i ? ", " : "") << min[i];
    if (max[i] != min[i]) expected << ".." << max[i];
  }
  expected << (min.size() == 1 ? ",)" : ")");
  throw std::invalid_argument("input '" + tensor + "' has shape " + shapeString(shape) + ", expected " +
                              expected.str() + " (the engine's optimisation profile)");
}

void checkResolvedOutput(std::string const& tensor, Shape const& shape) {
  if (std::any_of(shape.begin(), shape.end(), [](int64_t dim) { return dim < 0; })) {
    throw std::invalid_argument("output '" + tensor + "' has shape " + shapeString(shape) +
                                " after all input shapes were set: data-dependent output shapes are not supported");
  }
}

size_t grownCapacity(size_t current, size_t needed) {
  if (needed <= current && current > 0) return current;
  size_t const limit = std::numeric_limits<size_t>::max() - kBufferAlignment;
  if (needed > limit) throw std::invalid_argument("a buffer of " + std::to_string(needed) + " bytes cannot be allocated");
  size_t const doubled = current <= limit / 2 ? current * 2 : limit;
  size_t const target = std::max({needed, doubled, kBufferAlignment});
  return (target + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
}

}  // namespace fusionrt::trt
