// Full-integer post-training quantization of a trained NanoNAS model, with the TFLite converter's
// conventions (tests/data/reference-models/mcu-memory-model.md):
// - input uint8 scale 1 zero point 0, then QUANTIZE to int8 scale 1 zero point -128;
// - activations int8, asymmetric, from min/max calibrated on representative training images
//   (the range always contains 0, so ReLU and MEAN outputs get zero point -128);
//   MAX_POOL_2D outputs keep their input's parameters; the exception (QuantizeOptions::logit_span):
//   the FULLY_CONNECTED output's range starts 12 below the lowest calibrated top logit, not at the
//   minimum, because min/max leaves the logits ~0.8 per int8 step on trained models;
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
  // Per channel (last dimension) of every non-constant tensor; empty for constants.
  std::vector<std::vector<float>> channel_min, channel_max;
  // Per tensor: the smallest over the images of the image's largest value (for logits: the
  // lowest top logit any calibration image had).
  std::vector<float> min_image_max;
  int64_t images = 0;
};

// Runs the float graph on data's images `indices` and records the ranges. INVALID_ARGUMENT when
// the image shape differs from the graph's input, an index is out of range or indices is empty.
absl::StatusOr<CalibrationRanges> Calibrate(const Graph& float_graph, const Dataset& data,
                                            const std::vector<int64_t>& indices);

// The full-integer graph from a float graph and its calibrated ranges (see the conventions above).
// Tensor 0 is the uint8 input; the float graph's tensors follow in their order; the uint8 output
// comes last. INVALID_ARGUMENT if `ranges` does not cover the graph.
struct QuantizeOptions;
absl::StatusOr<Graph> QuantizeGraph(const Graph& float_graph, const CalibrationRanges& ranges,
                                    const QuantizeOptions& options);
absl::StatusOr<Graph> QuantizeGraph(const Graph& float_graph, const CalibrationRanges& ranges);

inline constexpr int kMinRepresentativeImages = 150;

// Cross-layer channel equalization of a 2023 float graph (same function, better int8 ranges).
// Every activation is quantized per tensor, so in the BatchNorm chain conv -> RELU -> MAX_POOL ->
// MUL(m) -> ADD(a) -> conv a channel whose values are small next to the others' is left with a few
// int8 steps. Positive per-channel factors move between the ops without changing the float
// function: t_c scales conv output channel c (weights and bias; RELU and MAX_POOL commute) and
// divides m_c; u_c scales m_c and a_c and divides the next conv's input channel c; before MEAN ->
// FULLY_CONNECTED, t_c scales the last conv's channel and divides the dense weights' column c.
// The factors balance the calibrated per-channel ranges of the tensors they trade between (the
// geometric mean of the two ranges, as in Nagel et al. 2019, "Data-Free Quantization"). Ops,
// tensors and shapes are unchanged, so the file size and RAM figures are too. A graph without
// these patterns (2024: BatchNorm folded) gets only the last-conv/dense step.
// INVALID_ARGUMENT if `ranges` lacks per-channel ranges for the graph.
absl::StatusOr<Graph> EqualizeChannels(const Graph& float_graph, const CalibrationRanges& ranges);

struct QuantizeOptions {
  // EqualizeChannels before the final calibration. On a (4, 2) model trained 20 epochs on 48,000
  // Fashion-MNIST images (export_quant_diag, 10,000 test images) it cut the BatchNorm tensors'
  // relative RMS error from ~2% to ~0.7% and the last conv's from 4.4% to 3.6%, but test accuracy
  // moved by noise only (0.7994 -> 0.7978, float 0.8000; argmax agreement 0.976 -> 0.979), so it
  // is off and the BatchNorm constants stay the converter's.
  bool equalize = false;
  // The FULLY_CONNECTED output (the logits) range starts at most this far below the lowest top
  // logit of any calibration image, instead of at the calibrated minimum. SOFTMAX's int8 output
  // (1/256 steps) rounds every class more than ln(512) ~ 6.2 below the top to probability 0, so
  // logits further down need no resolution; a trained model's minimum logit is often 30+ below,
  // and min/max calibration (the TFLite converter's) then spends most of the 256 steps there.
  // Same model as above: logits [-184, 24] at 0.81 per step gave accuracy 0.7798 (float 0.8000,
  // agreement 0.910) while every tensor up to MEAN stayed within 4.4% relative RMS; the cut gives
  // 0.135 per step and 0.7994 (agreement 0.976). 0 keeps the converter's min/max.
  float logit_span = 12.0f;
};

// BuildFloatGraph + Calibrate (+ EqualizeChannels + Calibrate when options.equalize) +
// QuantizeGraph. `representative` are indices into `data` (training
// images); at least `min_images` of them (INVALID_ARGUMENT otherwise).
absl::StatusOr<Graph> QuantizeModel(const Architecture& arch, const ModelWeights& weights,
                                    const Dataset& data, const std::vector<int64_t>& representative,
                                    int min_images = kMinRepresentativeImages,
                                    const QuantizeOptions& options = QuantizeOptions());

// A quantized graph of `arch` with placeholder values (zeros, unit ranges): every tensor, shape,
// type and quantization vector has its final size, so its serialisation has the final file size.
absl::StatusOr<Graph> PlaceholderQuantizedGraph(const Architecture& arch);

// TFLite's asymmetric int8 parameters for a float range (extended to contain 0; nudged zero point).
void AsymmetricParams(float min, float max, float* scale, int32_t* zero_point);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_QUANTIZE_H_
