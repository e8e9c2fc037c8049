// Running an exported graph on images: float reference inference (the float graph, or straight from
// ModelWeights layer by layer) and full-integer inference of the quantized graph with TensorFlow
// Lite Micro's reference-kernel arithmetic (fixed-point multipliers, zero points, rounding,
// saturation), so nanonas's quantized accuracy is what the microcontroller will compute.
#ifndef NANONAS_COMMON_EXPORT_INFERENCE_H_
#define NANONAS_COMMON_EXPORT_INFERENCE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"
#include "common/export/graph.h"

namespace nanonas {

// Runs a float graph on one image (H*W*C uint8 pixels, NHWC). Returns the output tensor's values
// (class probabilities). When `activations` is given it receives every tensor's float values
// (constants included), indexed like graph.tensors: what calibration records.
// FAILED_PRECONDITION if the graph is quantized.
absl::StatusOr<std::vector<float>> RunFloatGraph(
    const Graph& graph, const uint8_t* image,
    std::vector<std::vector<float>>* activations = nullptr);

// Runs a quantized graph on one image with integer arithmetic as TFLite Micro's reference kernels
// (tflite-micro, early 2023): QUANTIZE (requantize), MUL, ADD, CONV_2D per-channel, MAX_POOL_2D,
// MEAN (integer averaging), FULLY_CONNECTED, SOFTMAX (gemmlowp fixed point). Returns the uint8
// output (probabilities in 1/256). `raw_values`, when given, receives every tensor's raw integer
// values (as int32, constants included). FAILED_PRECONDITION if the graph is not quantized.
absl::StatusOr<std::vector<uint8_t>> RunIntegerGraph(
    const Graph& graph, const uint8_t* image,
    std::vector<std::vector<int32_t>>* raw_values = nullptr);

// Float inference straight from the trained weights, layer by layer as the architecture lists
// them (BatchNorm with its statistics, not folded): an independent check of BuildFloatGraph.
absl::StatusOr<std::vector<float>> FloatReferenceForward(const Architecture& arch,
                                                         const ModelWeights& weights,
                                                         const uint8_t* image);

// Index of the largest value; the first one on ties (numpy's argmax).
template <typename T>
int Argmax(const std::vector<T>& v) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

// Accuracy (0..1) of the quantized graph's integer inference / the float graph on the images
// `indices` of `data`. INVALID_ARGUMENT if the dataset's image shape differs from the graph's
// input, an index is out of range or `indices` is empty.
absl::StatusOr<double> QuantizedAccuracy(const Graph& quantized, const Dataset& data,
                                         const std::vector<int64_t>& indices);
absl::StatusOr<double> FloatAccuracy(const Graph& float_graph, const Dataset& data,
                                     const std::vector<int64_t>& indices);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_INFERENCE_H_
