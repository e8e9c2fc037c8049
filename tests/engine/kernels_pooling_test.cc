// The pooling kernels (kernels_pooling.cc) against the naive references and finite differences,
// on the AVX-512 and the portable paths.
#include "gtest/gtest.h"
#include "tests/engine/kernels_test_util.h"
#include "tests/engine/test_util.h"
#include "worker/engine/kernels.h"
#include "worker/engine/reference.h"

namespace nanonas::engine {
namespace {

using testing::Dot;
using testing::ExpectForwardNear;
using testing::ExpectGradNear;
using testing::NumericGrad;
using testing::RandomVec;
using testing::ToFloat;

class MaxPoolTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { UseAvx512KernelsForTesting(GetParam()); }
  void TearDown() override { UseAvx512KernelsForTesting(true); }
};
INSTANTIATE_TEST_SUITE_P(Paths, MaxPoolTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Avx512" : "Portable"; });

TEST_P(MaxPoolTest, ForwardMatchesReferenceOnOddSizes) {
  const int n = 2, h = 5, w = 7, c = 3;
  const auto x = RandomVec(n * h * w * c, 13);
  const auto xf = ToFloat(x);
  std::vector<float> y(n * (h / 2) * (w / 2) * c), yi(y.size());
  std::vector<uint8_t> ws(y.size());
  MaxPoolForward(xf.data(), n, h, w, c, y.data(), ws.data());
  MaxPoolForwardInference(xf.data(), n, h, w, c, yi.data());
  ExpectForwardNear(y, reference::MaxPool2x2(x, n, h, w, c));
  EXPECT_EQ(y, yi);
}

TEST_P(MaxPoolTest, ForwardAndWorkspaceAgreeForWideLayers) {
  for (int c : {1, 16, 20, 37}) {
    const int n = 3, h = 4, w = 6;
    const auto x = RandomVec(n * h * w * c, 50 + c);
    const auto xf = ToFloat(x);
    std::vector<float> y(n * (h / 2) * (w / 2) * c), yi(y.size());
    std::vector<uint8_t> ws(y.size());
    MaxPoolForward(xf.data(), n, h, w, c, y.data(), ws.data());
    MaxPoolForwardInference(xf.data(), n, h, w, c, yi.data());
    ExpectForwardNear(y, reference::MaxPool2x2(x, n, h, w, c));
    EXPECT_EQ(y, yi);
    for (size_t q = 0; q < y.size(); ++q) {  // the workspace names the maximum's position
      const int ch = q % c, j = (q / c) % (w / 2), i = (q / c / (w / 2)) % (h / 2),
                b = q / c / (w / 2) / (h / 2);
      const int di = ws[q] / 2, dj = ws[q] % 2;
      ASSERT_EQ(xf[((static_cast<size_t>(b) * h + 2 * i + di) * w + 2 * j + dj) * c + ch], y[q]);
    }
  }
}

TEST_P(MaxPoolTest, BackwardMatchesFiniteDifferencesAndZeroesUnpooledEdges) {
  const int n = 2, h = 5, w = 7, c = 4;
  auto x = RandomVec(n * h * w * c, 14);
  const auto r = RandomVec(n * (h / 2) * (w / 2) * c, 15);
  const auto xf = ToFloat(x), rf = ToFloat(r);
  std::vector<float> y(r.size()), dx(x.size(), 123.f);  // garbage must be overwritten
  std::vector<uint8_t> ws(r.size());
  MaxPoolForward(xf.data(), n, h, w, c, y.data(), ws.data());
  MaxPoolBackward(rf.data(), ws.data(), n, h, w, c, dx.data());
  auto loss = [&] { return Dot(reference::MaxPool2x2(x, n, h, w, c), r); };
  for (size_t i = 0; i < x.size(); ++i) ExpectGradNear(dx[i], NumericGrad(x, i, loss), "dx", i);
}

// The fused ReLU mask equals the ReLU backward applied after the plain backward.
TEST_P(MaxPoolTest, FusedReluMaskEqualsSeparateReluBackward) {
  for (int c : {1, 3, 16, 20}) {
    const int n = 2, h = 6, w = 5;
    auto xd = RandomVec(n * h * w * c, 30 + c);
    std::vector<float> x(xd.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::max(0.f, static_cast<float>(xd[i]));
    const auto r = ToFloat(RandomVec(n * (h / 2) * (w / 2) * c, 31));
    std::vector<float> y(r.size()), plain(x.size()), fused(x.size());
    std::vector<uint8_t> ws(r.size());
    MaxPoolForward(x.data(), n, h, w, c, y.data(), ws.data());
    MaxPoolBackward(r.data(), ws.data(), n, h, w, c, plain.data());
    ReluBackwardInPlace(x.data(), static_cast<int64_t>(x.size()), plain.data());
    MaxPoolBackward(r.data(), ws.data(), n, h, w, c, fused.data(), y.data());
    EXPECT_EQ(plain, fused) << "c=" << c;
  }
}

TEST(GlobalAvgPoolTest, BackwardSpreadsTheMeanGradientWithAndWithoutReluMask) {
  for (int c : {1, 3, 5, 16, 17, 32}) {  // periods 16 .. 272 (the last takes the plain loop)
    const int n = 2, hw = 7;
    auto xd = RandomVec(n * hw * c, 32 + c);
    std::vector<float> x(xd.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::max(0.f, static_cast<float>(xd[i]));
    const auto r = ToFloat(RandomVec(n * c, 33));
    std::vector<float> plain(x.size()), fused(x.size());
    GlobalAvgPoolBackward(r.data(), n, hw, c, plain.data());
    GlobalAvgPoolBackward(r.data(), n, hw, c, fused.data(), x.data());
    for (int b = 0; b < n; ++b)
      for (int p = 0; p < hw; ++p)
        for (int ch = 0; ch < c; ++ch) {
          const size_t i = (static_cast<size_t>(b) * hw + p) * c + ch;
          ASSERT_FLOAT_EQ(plain[i], r[b * c + ch] / hw) << "c=" << c;
          ASSERT_FLOAT_EQ(fused[i], x[i] > 0 ? r[b * c + ch] / hw : 0.f) << "c=" << c;
        }
  }
}

TEST(GlobalAvgPoolTest, ForwardMatchesReferenceForAnyChannelCount) {
  for (int c : {1, 2, 3, 16, 17, 32}) {
    const int n = 2, h = 5, w = 7;
    const auto x = RandomVec(n * h * w * c, 40 + c);
    const auto xf = ToFloat(x);
    std::vector<float> y(n * c);
    GlobalAvgPoolForward(xf.data(), n, h * w, c, y.data());
    ExpectForwardNear(y, reference::GlobalAvgPool(x, n, h, w, c));
  }
}

TEST(GlobalAvgPoolTest, ForwardAndBackwardMatchReference) {
  const int n = 3, h = 3, w = 2, c = 5;
  auto x = RandomVec(n * h * w * c, 16);
  const auto r = RandomVec(n * c, 17);
  const auto xf = ToFloat(x), rf = ToFloat(r);
  std::vector<float> y(n * c), dx(x.size());
  GlobalAvgPoolForward(xf.data(), n, h * w, c, y.data());
  ExpectForwardNear(y, reference::GlobalAvgPool(x, n, h, w, c));
  GlobalAvgPoolBackward(rf.data(), n, h * w, c, dx.data());
  auto loss = [&] { return Dot(reference::GlobalAvgPool(x, n, h, w, c), r); };
  for (size_t i = 0; i < x.size(); ++i) ExpectGradNear(dx[i], NumericGrad(x, i, loss), "dx", i);
}

}  // namespace
}  // namespace nanonas::engine
