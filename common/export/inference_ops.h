// Internal to nanonas_export: the float and integer kernels RunFloatGraph and RunIntegerGraph
// (common/export/inference.cc) execute, one function per operation (NHWC, batch 1). Integer
// kernels follow TFLite Micro's reference kernels bit for bit and take their tensors' int8/uint8
// values widened to int32. Every function is pure (writes only its `out`) and thread-safe.
#ifndef NANONAS_COMMON_EXPORT_INFERENCE_OPS_H_
#define NANONAS_COMMON_EXPORT_INFERENCE_OPS_H_

#include <cstdint>
#include <vector>

#include "common/export/graph.h"

namespace nanonas {
namespace inference_ops {

// Height, width and channels of an NHWC tensor (1 for dimensions it lacks).
struct Dims4 {
  int h = 1, w = 1, c = 1;
};
Dims4 Nhwc(const GraphTensor& t);

// Float kernels.

void FloatConv3x3Same(const std::vector<float>& in, Dims4 d, const std::vector<float>& w,
                      const std::vector<float>& bias, int cout, bool relu, std::vector<float>* out);

void FloatMaxPool2x2(const std::vector<float>& in, Dims4 d, std::vector<float>* out);

void FloatMean(const std::vector<float>& in, Dims4 d, std::vector<float>* out);

void FloatDense(const std::vector<float>& in, const std::vector<float>& w,
                const std::vector<float>& bias, std::vector<float>* out);

void FloatSoftmax(const std::vector<float>& in, std::vector<float>* out);

// Integer kernels (TFLite Micro reference arithmetic).

// Requantize (QUANTIZE between 8-bit types).
void IntQuantize(const std::vector<int32_t>& in, const GraphTensor& ti, const GraphTensor& to,
                 std::vector<int32_t>* out);

// MUL int8 with the second operand broadcast along the last dimension (or a scalar).
void IntMul(const std::vector<int32_t>& a, const GraphTensor& ta, const std::vector<int32_t>& b,
            const GraphTensor& tb, const GraphTensor& to, std::vector<int32_t>* out);

// ADD int8 (left shift 20, both inputs rescaled to twice the larger scale).
void IntAdd(const std::vector<int32_t>& a, const GraphTensor& ta, const std::vector<int32_t>& b,
            const GraphTensor& tb, const GraphTensor& to, std::vector<int32_t>* out);

// CONV_2D 3x3 SAME stride 1, per-channel (ConvPerChannel).
void IntConv(const std::vector<int32_t>& in, const GraphTensor& ti, Dims4 d,
             const std::vector<int32_t>& w, const GraphTensor& tw, const std::vector<int32_t>& bias,
             const GraphTensor& to, bool relu, std::vector<int32_t>* out);

void IntMaxPool(const std::vector<int32_t>& in, Dims4 d, std::vector<int32_t>* out);

// MEAN over axes 1, 2 (tflite-micro 2023: plain integer mean when input and output share their
// quantization, else QuantizedMeanOrSum with the 1/N factor folded into the output multiplier).
void IntMean(const std::vector<int32_t>& in, const GraphTensor& ti, Dims4 d, const GraphTensor& to,
             std::vector<int32_t>* out);

void IntFullyConnected(const std::vector<int32_t>& in, const GraphTensor& ti,
                       const std::vector<int32_t>& w, const GraphTensor& tw,
                       const std::vector<int32_t>& bias, const GraphTensor& to,
                       std::vector<int32_t>* out);

// SOFTMAX int8 -> int8 (scale 1/256, zero point -128), beta 1.
void IntSoftmax(const std::vector<int32_t>& in, const GraphTensor& ti, std::vector<int32_t>* out);

}  // namespace inference_ops
}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_INFERENCE_OPS_H_
