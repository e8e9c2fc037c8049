#include "common/export/fixed_point.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace nanonas {
namespace fixed_point {
namespace {

constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();
constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();

// Two's-complement wrapping add/sub/shift: the reference code does these in int32 and never
// overflows for valid inputs; wrapping keeps us free of undefined behaviour when it would.
int32_t WrapAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}
int32_t WrapSub(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) - static_cast<uint32_t>(b));
}
int32_t WrapShiftLeft(int32_t a, int shift) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) << shift);
}

// gemmlowp's SaturatingRoundingMultiplyByPOT<exponent>: saturating left shift for exponent > 0,
// rounding right shift for exponent < 0.
int32_t SaturatingRoundingMultiplyByPOT(int32_t x, int exponent) {
  if (exponent == 0) return x;
  if (exponent < 0) return RoundingDivideByPOT(x, -exponent);
  const int32_t threshold = static_cast<int32_t>((int64_t{1} << (31 - exponent)) - 1);
  if (x > threshold) return kInt32Max;
  if (x < -threshold) return kInt32Min;
  return WrapShiftLeft(x, exponent);
}

// gemmlowp's RoundingHalfSum for int32: (a + b) / 2 rounded away from zero.
int32_t RoundingHalfSum(int32_t a, int32_t b) {
  const int64_t sum = static_cast<int64_t>(a) + b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return static_cast<int32_t>((sum + sign) / 2);
}

// exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8).
int32_t ExpOnIntervalNegativeQuarterTo0(int32_t a) {
  const int32_t constant_term = 1895147668;        // exp(-1/8) in Q0.31
  const int32_t constant_1_over_3 = 715827883;     // 1/3 in Q0.31
  const int32_t x = WrapAdd(a, int32_t{1} << 28);  // a + 1/8
  const int32_t x2 = SaturatingRoundingDoublingHighMul(x, x);
  const int32_t x3 = SaturatingRoundingDoublingHighMul(x2, x);
  const int32_t x4 = SaturatingRoundingDoublingHighMul(x2, x2);
  const int32_t x4_over_4 = SaturatingRoundingMultiplyByPOT(x4, -2);
  const int32_t poly = SaturatingRoundingMultiplyByPOT(
      WrapAdd(SaturatingRoundingDoublingHighMul(WrapAdd(x4_over_4, x3), constant_1_over_3), x2),
      -1);
  return WrapAdd(constant_term, SaturatingRoundingDoublingHighMul(constant_term, WrapAdd(x, poly)));
}

}  // namespace

void QuantizeMultiplier(double real, int32_t* multiplier, int* shift) {
  if (real == 0.0) {
    *multiplier = 0;
    *shift = 0;
    return;
  }
  const double q = std::frexp(real, shift);
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(int64_t{1} << 31)));
  if (q_fixed == (int64_t{1} << 31)) {
    q_fixed /= 2;
    ++*shift;
  }
  if (*shift < -31) {
    *shift = 0;
    q_fixed = 0;
  }
  *multiplier = static_cast<int32_t>(q_fixed);
}

int32_t SaturatingRoundingDoublingHighMul(int32_t a, int32_t b) {
  const bool overflow = a == b && a == kInt32Min;
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  const int32_t high = static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
  return overflow ? kInt32Max : high;
}

int32_t RoundingDivideByPOT(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t MultiplyByQuantizedMultiplier(int32_t x, int32_t multiplier, int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  return RoundingDivideByPOT(
      SaturatingRoundingDoublingHighMul(WrapShiftLeft(x, left_shift), multiplier), right_shift);
}

int32_t MultiplyByQuantizedMultiplierSmallerThanOneExp(int32_t x, int32_t multiplier,
                                                       int left_shift) {
  return RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, multiplier), -left_shift);
}

int32_t MultiplyByQuantizedMultiplierGreaterThanOne(int32_t x, int32_t multiplier, int left_shift) {
  return SaturatingRoundingDoublingHighMul(WrapShiftLeft(x, left_shift), multiplier);
}

void PreprocessSoftmaxScaling(double beta, double input_scale, int input_integer_bits,
                              int32_t* multiplier, int* left_shift) {
  const double max_real_multiplier = static_cast<double>((int64_t{1} << 31) - 1);
  const double real =
      std::min<double>(beta * input_scale * static_cast<double>(1 << (31 - input_integer_bits)),
                       max_real_multiplier);
  QuantizeMultiplier(real, multiplier, left_shift);
}

int CalculateInputRadius(int input_integer_bits, int input_left_shift, int total_signed_bits) {
  const double max_input_rescaled =
      1.0 * ((1 << input_integer_bits) - 1) *
      static_cast<double>(int64_t{1} << (total_signed_bits - input_integer_bits)) /
      static_cast<double>(int64_t{1} << input_left_shift);
  return static_cast<int>(std::floor(max_input_rescaled));
}

int32_t RescaleFixedPoint(int32_t raw, int src_integer_bits, int dst_integer_bits) {
  return SaturatingRoundingMultiplyByPOT(raw, src_integer_bits - dst_integer_bits);
}

int32_t ExpOnNegativeValuesQ5(int32_t a) {
  constexpr int kIntegerBits = 5;
  constexpr int kFractionalBits = 31 - kIntegerBits;
  const int32_t one_quarter = int32_t{1} << (kFractionalBits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_one_quarter = WrapSub(a & mask, one_quarter);
  int32_t result = ExpOnIntervalNegativeQuarterTo0(
      RescaleFixedPoint(a_mod_quarter_minus_one_quarter, kIntegerBits, 0));
  const int32_t remainder = WrapSub(a_mod_quarter_minus_one_quarter, a);
  // Barrel shifter: multiply by exp(-2^e) for every bit e of the remainder (e = -2 .. 4).
  struct Step {
    int exponent;
    int32_t multiplier;  // exp(-2^exponent) in Q0.31
  };
  static constexpr Step kSteps[] = {{-2, 1672461947}, {-1, 1302514674}, {0, 790015084},
                                    {1, 290630308},   {2, 39332535},    {3, 720401},
                                    {4, 242}};
  for (const Step& s : kSteps) {
    if (kIntegerBits > s.exponent) {
      const int shift_amount = kFractionalBits + s.exponent;
      if (remainder & (int32_t{1} << shift_amount)) {
        result = SaturatingRoundingDoublingHighMul(result, s.multiplier);
      }
    }
  }
  if (a == 0) result = kInt32Max;  // exp(0) = One() in Q0.31
  return result;
}

int32_t OneOverOnePlusXForXIn01(int32_t a) {
  const int32_t half_denominator = RoundingHalfSum(a, kInt32Max);
  const int32_t constant_48_over_17 = 1515870810;       // Q2.29
  const int32_t constant_neg_32_over_17 = -1010580540;  // Q2.29
  const int32_t one_q2 = int32_t{1} << 29;
  int32_t x = WrapAdd(constant_48_over_17,
                      SaturatingRoundingDoublingHighMul(half_denominator, constant_neg_32_over_17));
  for (int i = 0; i < 3; ++i) {  // Newton-Raphson
    const int32_t half_denominator_times_x = SaturatingRoundingDoublingHighMul(half_denominator, x);
    const int32_t one_minus = WrapSub(one_q2, half_denominator_times_x);
    x = WrapAdd(x, RescaleFixedPoint(SaturatingRoundingDoublingHighMul(x, one_minus), 4, 2));
  }
  // ExactMulByPot<-1> turns Q2.29 into Q1.30 without touching the raw value.
  return RescaleFixedPoint(x, 1, 0);
}

int32_t GetReciprocal(int32_t x, int x_integer_digits, int* num_bits_over_unit) {
  const int headroom_plus_one = CountLeadingZeros32(static_cast<uint32_t>(x));
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  const int32_t shifted_sum_minus_one =
      static_cast<int32_t>((static_cast<uint32_t>(x) << headroom_plus_one) - (uint32_t{1} << 31));
  return OneOverOnePlusXForXIn01(shifted_sum_minus_one);
}

int CountLeadingZeros32(uint32_t x) { return x == 0 ? 32 : __builtin_clz(x); }
int CountLeadingZeros64(uint64_t x) { return x == 0 ? 64 : __builtin_clzll(x); }

}  // namespace fixed_point
}  // namespace nanonas
