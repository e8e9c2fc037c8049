// The hand-written kernels against the naive double-precision references (forward) and against
// central finite differences of the references (backward).
// Tolerances: forward |fast - ref| <= 1e-4 (1 + |ref|) (float vs double); backward
// |analytic - numeric| <= 1e-3 |numeric| + 1e-4 (finite differences with eps 1e-5 in double).
#include "worker/engine/kernels.h"

#include <cmath>

#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "worker/engine/reference.h"

namespace nanonas::engine {
namespace {

using testing::Dot;
using testing::NumericGrad;
using testing::RandomVec;
using testing::ToFloat;

void ExpectForwardNear(const std::vector<float>& fast, const std::vector<double>& ref) {
  ASSERT_EQ(fast.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    ASSERT_NEAR(fast[i], ref[i], 1e-4 * (1 + std::abs(ref[i]))) << "at " << i;
  }
}

void ExpectGradNear(double analytic, double numeric, const char* what, size_t i) {
  EXPECT_NEAR(analytic, numeric, 1e-3 * std::abs(numeric) + 1e-4) << what << " at " << i;
}

class BatchNormTest : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(BatchNormTest, TrainingForwardMatchesReferenceAndUpdatesMovingStatistics) {
  const auto [c, relu] = GetParam();
  const int64_t rows = 37;
  const auto x = RandomVec(rows * c, 1, -2, 3), gamma = RandomVec(c, 2, 0.5, 1.5),
             beta = RandomVec(c, 3);
  BatchNormKernel k(c);
  std::vector<float> y(rows * c), mean(c), invstd(c), mm(c, 0.5f), mv(c, 2.f);
  const auto xf = ToFloat(x), gf = ToFloat(gamma), bf = ToFloat(beta);
  k.ForwardTraining(xf.data(), rows, gf.data(), bf.data(), 1e-3f, 0.99f, relu, y.data(),
                    mean.data(), invstd.data(), mm.data(), mv.data());
  ExpectForwardNear(y, reference::BatchNormTraining(x, rows, c, gamma, beta, 1e-3, relu));
  for (int ch = 0; ch < c; ++ch) {
    double mu = 0, var = 0;
    for (int64_t r = 0; r < rows; ++r) mu += x[r * c + ch] / rows;
    for (int64_t r = 0; r < rows; ++r) var += (x[r * c + ch] - mu) * (x[r * c + ch] - mu);
    EXPECT_NEAR(mm[ch], 0.5 * 0.99 + mu * 0.01, 1e-5);
    EXPECT_NEAR(mv[ch], 2.0 * 0.99 + var / (rows - 1) * 0.01, 1e-5);  // unbiased, as TF
    EXPECT_NEAR(invstd[ch], 1 / std::sqrt(var / rows + 1e-3), 1e-4);
  }
}

TEST_P(BatchNormTest, InferenceForwardMatchesReference) {
  const auto [c, relu] = GetParam();
  const int64_t rows = 29;
  const auto x = RandomVec(rows * c, 4), gamma = RandomVec(c, 5, 0.5, 1.5),
             beta = RandomVec(c, 6), mean = RandomVec(c, 7), var = RandomVec(c, 8, 0.2, 2);
  BatchNormKernel k(c);
  std::vector<float> y(rows * c);
  const auto xf = ToFloat(x), gf = ToFloat(gamma), bf = ToFloat(beta), mf = ToFloat(mean),
             vf = ToFloat(var);
  k.ForwardInference(xf.data(), rows, gf.data(), bf.data(), mf.data(), vf.data(), 1e-3f, relu,
                     y.data());
  ExpectForwardNear(y,
                    reference::BatchNormInference(x, rows, c, gamma, beta, mean, var, 1e-3, relu));
}

TEST_P(BatchNormTest, BackwardMatchesFiniteDifferences) {
  const auto [c, relu] = GetParam();
  const int64_t rows = 23;
  auto x = RandomVec(rows * c, 9, -2, 2), gamma = RandomVec(c, 10, 0.5, 1.5),
       beta = RandomVec(c, 11), r = RandomVec(rows * c, 12);
  BatchNormKernel k(c);
  std::vector<float> y(rows * c), mean(c), invstd(c), mm(c), mv(c), dgamma(c), dbeta(c),
      dx(rows * c);
  const auto xf = ToFloat(x), gf = ToFloat(gamma), bf = ToFloat(beta), rf = ToFloat(r);
  k.ForwardTraining(xf.data(), rows, gf.data(), bf.data(), 1e-3f, 0.99f, relu, y.data(),
                    mean.data(), invstd.data(), mm.data(), mv.data());
  k.Backward(xf.data(), y.data(), rf.data(), rows, gf.data(), mean.data(), invstd.data(), relu,
             dgamma.data(), dbeta.data(), dx.data());
  auto loss = [&] {
    return Dot(reference::BatchNormTraining(x, rows, c, gamma, beta, 1e-3, relu), r);
  };
  for (size_t i = 0; i < x.size(); ++i) ExpectGradNear(dx[i], NumericGrad(x, i, loss), "dx", i);
  for (int i = 0; i < c; ++i) {
    ExpectGradNear(dgamma[i], NumericGrad(gamma, i, loss), "dgamma", i);
    ExpectGradNear(dbeta[i], NumericGrad(beta, i, loss), "dbeta", i);
  }
}

INSTANTIATE_TEST_SUITE_P(Channels, BatchNormTest,
                         ::testing::Combine(::testing::Values(1, 2, 3, 8, 16, 20),
                                            ::testing::Bool()));

// Max pooling runs an AVX-512 path where available and a portable one elsewhere: test both.
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

TEST(DenseTest, ForwardAndBackwardMatchReference) {
  const int n = 4, in = 7, out = 3;
  auto x = RandomVec(n * in, 18), k = RandomVec(out * in, 19), b = RandomVec(out, 20);
  const auto r = RandomVec(n * out, 21);
  const auto xf = ToFloat(x), kf = ToFloat(k), bf = ToFloat(b), rf = ToFloat(r);
  std::vector<float> y(n * out), dk(out * in), db(out), dx(n * in);
  DenseForward(xf.data(), n, in, out, kf.data(), bf.data(), y.data());
  ExpectForwardNear(y, reference::Dense(x, n, in, k, b, out));
  DenseBackward(xf.data(), rf.data(), n, in, out, kf.data(), dk.data(), db.data(), dx.data());
  auto loss = [&] { return Dot(reference::Dense(x, n, in, k, b, out), r); };
  for (size_t i = 0; i < x.size(); ++i) ExpectGradNear(dx[i], NumericGrad(x, i, loss), "dx", i);
  for (size_t i = 0; i < k.size(); ++i) ExpectGradNear(dk[i], NumericGrad(k, i, loss), "dk", i);
  for (size_t i = 0; i < b.size(); ++i) ExpectGradNear(db[i], NumericGrad(b, i, loss), "db", i);
}

TEST(SoftmaxCrossEntropyTest, LossAccuracyAndGradientMatchReference) {
  const int n = 5, k = 4;
  auto logits = RandomVec(n * k, 22, -3, 3);
  const std::vector<int32_t> labels = {0, 3, 1, 2, 3};
  const auto lf = ToFloat(logits);
  std::vector<float> probs(n * k), d(n * k);
  int correct = -1;
  const double sum = SoftmaxCrossEntropy(lf.data(), labels.data(), n, k, probs.data(), d.data(),
                                         &correct);
  EXPECT_NEAR(sum / n, reference::SoftmaxCrossEntropy(logits, labels, n, k), 1e-5);
  ExpectForwardNear(probs, reference::Softmax(logits, n, k));
  int expected_correct = 0;
  for (int b = 0; b < n; ++b) {
    const double* l = logits.data() + b * k;
    if (std::max_element(l, l + k) - l == labels[b]) ++expected_correct;
  }
  EXPECT_EQ(correct, expected_correct);
  auto loss = [&] { return reference::SoftmaxCrossEntropy(logits, labels, n, k); };
  for (size_t i = 0; i < logits.size(); ++i) {
    ExpectGradNear(d[i], NumericGrad(logits, i, loss), "dlogits", i);
  }
  std::vector<float> p2(n * k);
  Softmax(lf.data(), n, k, p2.data());
  ExpectForwardNear(p2, reference::Softmax(logits, n, k));
}

TEST(DropoutTest, KeepsAboutHalfScaledByTwoAndIsReproducible) {
  const int64_t count = 10000;
  std::vector<float> x(count, 3.f), mask(count), y(count), mask2(count), y2(count), dx(count);
  uint64_t s1 = 42, s2 = 42;
  DropoutForward(x.data(), count, 0.5f, &s1, mask.data(), y.data());
  DropoutForward(x.data(), count, 0.5f, &s2, mask2.data(), y2.data());
  EXPECT_EQ(mask, mask2);
  EXPECT_EQ(s1, s2);
  EXPECT_NE(s1, 42u);
  int64_t kept = 0;
  for (int64_t i = 0; i < count; ++i) {
    ASSERT_TRUE(mask[i] == 0.f || mask[i] == 2.f);
    EXPECT_EQ(y[i], 3.f * mask[i]);
    kept += mask[i] != 0.f;
  }
  EXPECT_NEAR(kept, count / 2, 300);
  DropoutBackward(x.data(), mask.data(), count, dx.data());
  EXPECT_EQ(dx, y);
}

TEST(AdamTest, FollowsKerasUpdateForm) {
  std::vector<float> w = {1.f, -2.f, 0.5f}, g = {0.1f, -0.3f, 0.f}, m(3, 0.f), v(3, 0.f);
  const double lr = 0.01;
  double wm[3] = {1, -2, 0.5}, mm[3] = {0, 0, 0}, vv[3] = {0, 0, 0};
  for (int t = 1; t <= 3; ++t) {
    const double lr_t = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
    AdamUpdate(w.data(), g.data(), m.data(), v.data(), 3, static_cast<float>(lr_t), 0.9f, 0.999f,
               1e-7f);
    for (int i = 0; i < 3; ++i) {
      mm[i] = 0.9 * mm[i] + 0.1 * g[i];
      vv[i] = 0.999 * vv[i] + 0.001 * g[i] * g[i];
      wm[i] -= lr_t * mm[i] / (std::sqrt(vv[i]) + 1e-7);
    }
  }
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(w[i], wm[i], 1e-6);
  EXPECT_NEAR(w[0], 1.0 - 0.03, 1e-4);  // Adam moves ~lr per step in the gradient's sign
  EXPECT_FLOAT_EQ(w[2], 0.5f);           // zero gradient: no move
}

TEST(GatherImagesTest, GathersByIndexAndScales) {
  const std::vector<uint8_t> images = {0, 255, 10, 20, 30, 40};  // three 2-byte images
  const std::vector<int64_t> idx = {2, 0};
  std::vector<float> out(4);
  GatherImages(images.data(), 2, idx.data(), 2, 0.5f, out.data());
  EXPECT_EQ(out, (std::vector<float>{15.f, 20.f, 0.f, 127.5f}));
}

TEST(ReluBackwardTest, MasksByOutputSign) {
  const std::vector<float> y = {0.f, 1.f, 0.f, 2.f};
  std::vector<float> dy = {5.f, 6.f, 7.f, 8.f};
  ReluBackwardInPlace(y.data(), 4, dy.data());
  EXPECT_EQ(dy, (std::vector<float>{0.f, 6.f, 0.f, 8.f}));
}

}  // namespace
}  // namespace nanonas::engine
