// Shape and buffer rules of the engine runtime, free of TensorRT and CUDA types so they are compiled
// into fusionrt._C and unit-tested on machines without either. Shapes are dims as int64, -1 where a
// dim is dynamic (as nvinfer1::Dims reports it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fusionrt::trt {

using Shape = std::vector<int64_t>;

// "(1, 3, 224, 224)"; "(8,)" for one dim, "()" for a scalar.
std::string shapeString(Shape const& shape);

// Number of elements. Throws std::invalid_argument on a negative dim (a shape TensorRT could not
// resolve) or an element count that overflows int64.
int64_t volume(Shape const& shape);

// A key that identifies a set of input shapes, "1x64|1x64|1x3x224x224|1x2": what a CUDA graph
// captured for those shapes may be replayed for. Inputs must come in the same order every time.
std::string shapeSignature(std::vector<Shape> const& shapes);

// Throws std::invalid_argument unless `shape` has the rank of `min` / `max` and every dim lies in
// [min[i], max[i]] (an engine optimisation profile's range); the message names `tensor`, what came
// and what the engine accepts, e.g. "input 'image' has shape (9, 3, 224, 224), expected (1..8, 3, 224, 224)".
void checkProfileShape(std::string const& tensor, Shape const& shape, Shape const& min, Shape const& max);

// Throws std::invalid_argument when an output's shape still holds an unresolved (-1) dim after every
// input shape was set: a data-dependent output, which needs an IOutputAllocator the runtime lacks.
void checkResolvedOutput(std::string const& tensor, Shape const& shape);

// cudaMalloc aligns to 256 bytes; capacities are kept multiples of it.
inline constexpr size_t kBufferAlignment = 256;

// The capacity a buffer of `current` bytes grows to so it holds `needed`: `current` when it already
// fits (buffers never shrink, so a smaller batch reuses them); otherwise at least double `current`,
// so a batch growing one sample at a time reallocates (and invalidates captured CUDA graphs) only
// log2(max batch) times. Always a multiple of kBufferAlignment, and at least one alignment unit so
// that even empty tensors get a valid, distinct address.
size_t grownCapacity(size_t current, size_t needed);

}  // namespace fusionrt::trt
