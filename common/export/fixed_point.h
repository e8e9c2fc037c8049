// Fixed-point arithmetic exactly as TensorFlow Lite (Micro)'s reference kernels do it: the
// double-rounding QuantizeMultiplier / MultiplyByQuantizedMultiplier pair (TFLITE_SINGLE_ROUNDING
// off, the default build), gemmlowp's saturating rounding doubling high multiply and rounding
// shifts, and the gemmlowp fixed-point exp / reciprocal used by the int8 SOFTMAX kernel.
// Written from the algorithms' descriptions in tflite-micro and gemmlowp; no code copied.
#ifndef NANONAS_COMMON_EXPORT_FIXED_POINT_H_
#define NANONAS_COMMON_EXPORT_FIXED_POINT_H_

#include <cstdint>

namespace nanonas {
namespace fixed_point {

// Splits a non-negative real multiplier into a Q0.31 multiplier and a power-of-two exponent:
// real ~= multiplier * 2^(shift - 31). multiplier is in [2^30, 2^31) except for 0 (both 0), and
// multipliers below 2^-31 flush to zero (shift 0), as TFLite's QuantizeMultiplier.
void QuantizeMultiplier(double real, int32_t* multiplier, int* shift);

// (a * b * 2) >> 32 rounded to nearest (ties away from zero); saturates INT32_MIN * INT32_MIN.
int32_t SaturatingRoundingDoublingHighMul(int32_t a, int32_t b);

// x / 2^exponent rounded to nearest, ties away from zero. REQUIRES: 0 <= exponent <= 31.
int32_t RoundingDivideByPOT(int32_t x, int exponent);

// x * multiplier * 2^(shift - 31) with TFLite's two roundings (left shift first, then the high
// multiply, then a rounding right shift).
int32_t MultiplyByQuantizedMultiplier(int32_t x, int32_t multiplier, int shift);
// For multipliers < 1 (shift <= 0) and > 1 (shift >= 0), as the ADD and SOFTMAX kernels use them.
int32_t MultiplyByQuantizedMultiplierSmallerThanOneExp(int32_t x, int32_t multiplier,
                                                       int left_shift);
int32_t MultiplyByQuantizedMultiplierGreaterThanOne(int32_t x, int32_t multiplier, int left_shift);

// Softmax preprocessing (TFLite's PreprocessSoftmaxScaling / CalculateInputRadius).
void PreprocessSoftmaxScaling(double beta, double input_scale, int input_integer_bits,
                              int32_t* multiplier, int* left_shift);
int CalculateInputRadius(int input_integer_bits, int input_left_shift, int total_signed_bits = 31);

// gemmlowp fixed point: raw int32 values with `integer_bits` integer bits (Q(ib).(31-ib)).
// exp(x) for x <= 0 given in Q5.26; result in Q0.31.
int32_t ExpOnNegativeValuesQ5(int32_t raw_q5_26);
// 1 / (1 + x) for x in [0, 1) given in Q0.31; result in Q0.31.
int32_t OneOverOnePlusXForXIn01(int32_t raw_q0_31);
// TFLite's GetReciprocal: for x in Q(x_integer_digits).(31-x_integer_digits), returns a Q0.31
// value s and num_bits_over_unit so that 1/x = s * 2^-num_bits_over_unit.
int32_t GetReciprocal(int32_t x, int x_integer_digits, int* num_bits_over_unit);
// Q(src).(31-src) -> Q(dst).(31-dst) with saturation (left) or rounding (right), as gemmlowp's
// Rescale.
int32_t RescaleFixedPoint(int32_t raw, int src_integer_bits, int dst_integer_bits);

// Number of leading zero bits of a 32/64-bit unsigned value (32/64 for 0).
int CountLeadingZeros32(uint32_t x);
int CountLeadingZeros64(uint64_t x);

}  // namespace fixed_point
}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_FIXED_POINT_H_
