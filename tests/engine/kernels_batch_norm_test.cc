// BatchNormKernel (kernels_batch_norm.cc) against the naive references and finite differences.
#include <cmath>

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
  const auto x = RandomVec(rows * c, 4), gamma = RandomVec(c, 5, 0.5, 1.5), beta = RandomVec(c, 6),
             mean = RandomVec(c, 7), var = RandomVec(c, 8, 0.2, 2);
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

}  // namespace
}  // namespace nanonas::engine
