#include "common/export/fixed_point.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace nanonas {
namespace fixed_point {
namespace {

TEST(ExportQuantizeMultiplierTest, MatchesTfliteValues) {
  int32_t m;
  int s;
  QuantizeMultiplier(0.5, &m, &s);
  EXPECT_EQ(m, 1 << 30);
  EXPECT_EQ(s, 0);
  QuantizeMultiplier(1.0, &m, &s);  // the "same scale" encoding TFLite's Requantize looks for
  EXPECT_EQ(m, 1 << 30);
  EXPECT_EQ(s, 1);
  QuantizeMultiplier(0.75, &m, &s);
  EXPECT_EQ(m, 1610612736);
  EXPECT_EQ(s, 0);
  QuantizeMultiplier(0.1, &m, &s);  // 0.8 * 2^-3
  EXPECT_EQ(m, 1717986918);
  EXPECT_EQ(s, -3);
  QuantizeMultiplier(3.0, &m, &s);  // 0.75 * 2^2
  EXPECT_EQ(m, 1610612736);
  EXPECT_EQ(s, 2);
  QuantizeMultiplier(0.0, &m, &s);
  EXPECT_EQ(m, 0);
  EXPECT_EQ(s, 0);
  QuantizeMultiplier(std::ldexp(1.0, -40), &m, &s);  // below 2^-31: flushed to zero
  EXPECT_EQ(m, 0);
  EXPECT_EQ(s, 0);
  QuantizeMultiplier(1.0 - std::ldexp(1.0, -40), &m, &s);  // rounds up to 2^31: halved, shift+1
  EXPECT_EQ(m, 1 << 30);
  EXPECT_EQ(s, 1);
}

TEST(ExportFixedPointTest, SaturatingRoundingDoublingHighMul) {
  const int32_t min = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(min, min), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(1 << 30, 1 << 30), 1 << 29);
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(3, 1 << 30), 2);    // 1.5 rounds away from zero
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(-3, 1 << 30), -1);  // -1.5: nudge 1-2^30 -> -1
  EXPECT_EQ(SaturatingRoundingDoublingHighMul(-5, 1 << 30), -2);
}

TEST(ExportFixedPointTest, RoundingDivideByPOTRoundsHalfAwayFromZero) {
  EXPECT_EQ(RoundingDivideByPOT(5, 1), 3);
  EXPECT_EQ(RoundingDivideByPOT(-5, 1), -3);
  EXPECT_EQ(RoundingDivideByPOT(4, 1), 2);
  EXPECT_EQ(RoundingDivideByPOT(-3, 1), -2);
  EXPECT_EQ(RoundingDivideByPOT(-2, 2), -1);  // -0.5 -> -1
  EXPECT_EQ(RoundingDivideByPOT(1, 2), 0);
  EXPECT_EQ(RoundingDivideByPOT(7, 0), 7);
}

TEST(ExportFixedPointTest, MultiplyByQuantizedMultiplierAgreesWithRealProduct) {
  int32_t m;
  int s;
  QuantizeMultiplier(0.5, &m, &s);
  EXPECT_EQ(MultiplyByQuantizedMultiplier(100, m, s), 50);
  EXPECT_EQ(MultiplyByQuantizedMultiplier(3, m, s), 2);
  EXPECT_EQ(MultiplyByQuantizedMultiplier(-3, m, s), -1);  // TFLite: -1.5 -> -1 (high-mul nudge)
  QuantizeMultiplier(1.0, &m, &s);
  EXPECT_EQ(MultiplyByQuantizedMultiplier(-77, m, s), -77);
  for (double real : {0.0123, 0.37, 0.9, 1.7, 13.25}) {
    QuantizeMultiplier(real, &m, &s);
    for (int32_t x : {-100000, -999, -1, 0, 1, 17, 12345}) {
      EXPECT_NEAR(MultiplyByQuantizedMultiplier(x, m, s), x * real, 1.0) << real << " " << x;
    }
  }
}

TEST(ExportFixedPointTest, ExpOnNegativeValuesIsAccurate) {
  EXPECT_EQ(ExpOnNegativeValuesQ5(0), std::numeric_limits<int32_t>::max());
  for (double x : {-0.001, -0.1, -0.25, -0.5, -1.0, -2.5, -7.9, -15.0, -31.0}) {
    const int32_t raw = static_cast<int32_t>(std::lround(x * (1 << 26)));
    const double got = ExpOnNegativeValuesQ5(raw) / 2147483648.0;
    EXPECT_NEAR(got, std::exp(x), 2e-7 + 1e-6 * std::exp(x)) << x;
  }
}

TEST(ExportFixedPointTest, ReciprocalIsAccurate) {
  for (double x : {0.0, 0.1, 0.5, 0.9, 0.999}) {
    const int32_t raw = static_cast<int32_t>(std::lround(x * 2147483647.0));
    EXPECT_NEAR(OneOverOnePlusXForXIn01(raw) / 2147483648.0, 1.0 / (1.0 + x), 1e-8) << x;
  }
  for (double v : {1.0, 1.5, 3.7, 100.25}) {  // Q12.19 inputs
    int bits;
    const int32_t r = GetReciprocal(static_cast<int32_t>(std::lround(v * (1 << 19))), 12, &bits);
    EXPECT_NEAR(r / 2147483648.0 / std::ldexp(1.0, bits), 1.0 / v, 1e-7) << v;
  }
}

TEST(ExportFixedPointTest, SoftmaxScalingMatchesTflite) {
  int32_t m;
  int shift;
  // input scale 1/16: beta * scale * 2^26 = 2^22 -> multiplier 2^30, shift 23.
  PreprocessSoftmaxScaling(1.0, 1.0 / 16, 5, &m, &shift);
  EXPECT_EQ(m, 1 << 30);
  EXPECT_EQ(shift, 23);
  // radius = 31 * 2^26 / 2^23 = 248
  EXPECT_EQ(CalculateInputRadius(5, shift), 248);
}

}  // namespace
}  // namespace fixed_point
}  // namespace nanonas
