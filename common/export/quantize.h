// Full-integer post-training quantization of a trained NanoNAS model, with the TFLite converter's
// conventions (shared/reference-models/mcu-memory-model.md):
// - input uint8 scale 1 zero point 0, then QUANTIZE to int8 scale 1 zero point -128;
// - activations int8, asymmetric, from min/max calibrated on representative training images
//   (the range always contains 0, so ReLU and MEAN outputs get zero point -128);
//   MAX_POOL_2D outputs keep their input's parameters;
// - conv weights int8 per-channel symmetric (quantized dimension 0), FULLY_CONNECTED weights int8
//   per-tensor symmetric, biases int32 with scale = input scale x weight scale, zero point 0;
// - MUL/ADD constants (the 1/255 rescale, BatchNorm vectors) int8 per-tensor asymmetric;
// - SOFTMAX output int8 scale 1/256 zero point -128; then QUANTIZE to the uint8 output, scale
//   1/256 zero point 0.
#ifndef NANONAS_COMMON_EXPORT_QUANTIZE_H_
#define NANONAS_COMMON_EXPORT_QUANTIZE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"
#include "common/export/graph.h"

namespace nanonas {

// Float min/max of every tensor of a float graph over the calibration images (indexed like
// graph.tensors; constants included).
struct CalibrationRanges {
  std::vector<float> min, max;
  int64_t images = 0;
};

// Runs the float graph on data's images `indices` and records the ranges. INVALID_ARGUMENT when
// the image shape differs from the graph's input, an index is out of range or indices is empty.
absl::StatusOr<CalibrationRanges> Calibrate(const Graph& float_graph, const Dataset& data,
                                            const std::vector<int64_t>& indices);

// The full-integer graph from a float graph and its calibrated ranges (see the conventions above).
// Tensor 0 is the uint8 input; the float graph's tensors follow in their order; the uint8 output
// comes last. INVALID_ARGUMENT if `ranges` does not cover the graph.
absl::StatusOr<Graph> QuantizeGraph(const Graph& float_graph, const CalibrationRanges& ranges);

inline constexpr int kMinRepresentativeImages = 150;

// BuildFloatGraph + Calibrate + QuantizeGraph. `representative` are indices into `data` (training
// images); at least `min_images` of them (INVALID_ARGUMENT otherwise).
absl::StatusOr<Graph> QuantizeModel(const Architecture& arch, const ModelWeights& weights,
                                    const Dataset& data, const std::vector<int64_t>& representative,
                                    int min_images = kMinRepresentativeImages);

// A quantized graph of `arch` with placeholder values (zeros, unit ranges): every tensor, shape,
// type and quantization vector has its final size, so its serialisation has the final file size.
absl::StatusOr<Graph> PlaceholderQuantizedGraph(const Architecture& arch);

// TFLite's asymmetric int8 parameters for a float range (extended to contain 0; nudged zero point).
void AsymmetricParams(float min, float max, float* scale, int32_t* zero_point);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_QUANTIZE_H_
