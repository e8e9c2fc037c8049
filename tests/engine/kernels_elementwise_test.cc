// The element-wise kernels (kernels_elementwise.cc): dropout, Adam, gathering, ReLU backward.
#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"
#include "worker/engine/kernels.h"

namespace nanonas::engine {
namespace {

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
  EXPECT_FLOAT_EQ(w[2], 0.5f);          // zero gradient: no move
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
