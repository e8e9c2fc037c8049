// The dense and softmax kernels (kernels_dense_softmax.cc) against the naive references.
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
  const double sum =
      SoftmaxCrossEntropy(lf.data(), labels.data(), n, k, probs.data(), d.data(), &correct);
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

}  // namespace
}  // namespace nanonas::engine
