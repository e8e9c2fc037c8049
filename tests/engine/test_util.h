// Shared helpers for the engine tests: random tensors, finite differences, a stripes dataset.
#ifndef NANONAS_TESTS_ENGINE_TEST_UTIL_H_
#define NANONAS_TESTS_ENGINE_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "common/data/dataset.h"

namespace nanonas::engine::testing {

inline std::vector<double> RandomVec(size_t n, uint32_t seed, double lo = -1, double hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = u(rng);
  return v;
}

inline std::vector<float> ToFloat(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

// Central finite difference of f with respect to x[i] (x is restored).
inline double NumericGrad(std::vector<double>& x, size_t i, const std::function<double()>& f,
                          double eps = 1e-5) {
  const double saved = x[i];
  x[i] = saved + eps;
  const double up = f();
  x[i] = saved - eps;
  const double down = f();
  x[i] = saved;
  return (up - down) / (2 * eps);
}

inline double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Two classes: horizontal stripes (label 0) and vertical stripes (label 1), random phase and
// period 4, with uniform pixel noise. (N, H, W, C) uint8.
inline Dataset MakeStripes(int n, int h, int w, int c, uint32_t seed, int noise = 40) {
  Dataset d;
  d.shape = {h, w, c};
  d.class_names = {"horizontal", "vertical"};
  d.images.resize(static_cast<size_t>(n) * h * w * c);
  d.labels.resize(n);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> phase(0, 3), nz(-noise, noise);
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    const int ph = phase(rng);
    d.labels[i] = label;
    uint8_t* img = d.images.data() + static_cast<size_t>(i) * h * w * c;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int ch = 0; ch < c; ++ch) {
          const int t = label == 0 ? y : x;
          const int base = ((t + ph) % 4) < 2 ? 190 : 60;
          img[(y * w + x) * c + ch] = static_cast<uint8_t>(std::clamp(base + nz(rng), 0, 255));
        }
  }
  return d;
}

// First `train` images for training, the rest for validation.
inline Split HeadSplit(const Dataset& d, int64_t train) {
  Split s;
  for (int64_t i = 0; i < d.size(); ++i) (i < train ? s.train : s.validation).push_back(i);
  return s;
}

}  // namespace nanonas::engine::testing

#endif  // NANONAS_TESTS_ENGINE_TEST_UTIL_H_
