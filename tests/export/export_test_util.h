// Seeded random weights and images for the export tests (no training needed).
#ifndef NANONAS_TESTS_EXPORT_EXPORT_TEST_UTIL_H_
#define NANONAS_TESTS_EXPORT_EXPORT_TEST_UTIL_H_

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"
#include "common/export/graph.h"

namespace nanonas {
namespace testing_util {

// He-initialised convs, plausible BatchNorm statistics, a dense layer scaled so that logits are
// spread (clear argmax), all from `seed`.
inline ModelWeights RandomWeights(const Architecture& arch, uint32_t seed) {
  std::mt19937 rng(seed);
  ModelWeights w = PlaceholderWeights(arch);
  auto normal = [&](float stddev) { return std::normal_distribution<float>(0.0f, stddev)(rng); };
  auto uniform = [&](float lo, float hi) {
    return std::uniform_real_distribution<float>(lo, hi)(rng);
  };
  for (ConvWeights& c : w.convs) {
    const float std_dev = std::sqrt(2.0f / (9.0f * c.in_channels));
    for (float& v : c.kernel) v = normal(std_dev);
    for (float& v : c.bias) v = uniform(-0.1f, 0.1f);
  }
  const bool v2023 = arch.spec.variant == Variant::k2023;
  // The 2024 network sees raw pixels (0..255): a trained first conv absorbs the 1/255.
  if (!v2023) {
    for (float& v : w.convs[0].kernel) v /= 255.0f;
  }
  for (size_t i = 0; i < w.batch_norms.size(); ++i) {
    BatchNormWeights& bn = w.batch_norms[i];
    const bool input_bn = v2023 && i == 0;  // sees x/255 in [0, 1]
    for (int c = 0; c < bn.channels; ++c) {
      bn.gamma[c] = uniform(0.6f, 1.4f);
      bn.beta[c] = uniform(-0.2f, 0.2f);
      bn.moving_mean[c] = input_bn ? uniform(0.3f, 0.6f) : uniform(0.0f, 0.5f);
      bn.moving_variance[c] = input_bn ? uniform(0.04f, 0.09f) : uniform(0.2f, 1.5f);
    }
  }
  const float dstd = 8.0f / std::sqrt(static_cast<float>(w.dense.in_features));
  for (float& v : w.dense.kernel) v = normal(dstd);
  for (float& v : w.dense.bias) v = uniform(-0.2f, 0.2f);
  return w;
}

// Images with blobs and gradients (not white noise, so features vary between images); labels
// cycle through the classes.
inline Dataset RandomImages(const InputShape& shape, int n, int classes, uint32_t seed) {
  std::mt19937 rng(seed);
  Dataset d;
  d.shape = shape;
  for (int i = 0; i < classes; ++i) d.class_names.push_back(std::to_string(i));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int i = 0; i < n; ++i) {
    const float cx = u(rng) * shape.width, cy = u(rng) * shape.height;
    const float r = 2.0f + u(rng) * shape.width / 2.0f;
    float base[3], blob[3];
    for (int c = 0; c < 3; ++c) {
      base[c] = u(rng) * 255.0f;
      blob[c] = u(rng) * 255.0f;
    }
    const float gx = (u(rng) - 0.5f) * 4.0f;
    for (int y = 0; y < shape.height; ++y) {
      for (int x = 0; x < shape.width; ++x) {
        const bool in = (x - cx) * (x - cx) + (y - cy) * (y - cy) < r * r;
        for (int c = 0; c < shape.channels; ++c) {
          float v = (in ? blob[c] : base[c]) + gx * x + (u(rng) - 0.5f) * 30.0f;
          d.images.push_back(static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f)));
        }
      }
    }
    d.labels.push_back(i % classes);
  }
  return d;
}

inline std::vector<int64_t> Range(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

}  // namespace testing_util
}  // namespace nanonas

#endif  // NANONAS_TESTS_EXPORT_EXPORT_TEST_UTIL_H_
