// A small model and images defined by integer formulas only (no RNG, no libm), so that every
// platform builds bit-identical float weights, calibration ranges and quantized tensors. The golden
// outputs in tflite_golden_test.cc were computed for this model by TensorFlow Lite's own reference
// kernels (tflite-micro's reference_ops / reference_integer_ops, run op by op on this quantized
// graph in a separate program, not part of nanonas).
#ifndef NANONAS_TESTS_EXPORT_GOLDEN_MODEL_H_
#define NANONAS_TESTS_EXPORT_GOLDEN_MODEL_H_

#include <cstdint>
#include <vector>

#include "common/arch/architecture.h"
#include "common/data/dataset.h"
#include "common/export/graph.h"
#include "common/export/quantize.h"

namespace nanonas {
namespace golden {

inline constexpr int kImages = 6;

// A value in [-1, 1] from an integer hash of (i, salt): exact in float.
inline float Hash(int64_t i, int64_t salt) {
  const int64_t h = ((i + 1) * 7919 + salt * 104729 + ((i * i) % 97) * 31) % 2001;
  return static_cast<float>(h - 1000) / 1000.0f;
}

inline CandidateSpec GoldenSpec(Variant v) {
  CandidateSpec s;
  s.k = 3;
  s.c = 2;
  s.input = {12, 12, 3};
  s.classes = 4;
  s.variant = v;
  return s;
}

inline ModelWeights GoldenWeights(const Architecture& arch) {
  ModelWeights w = PlaceholderWeights(arch);
  const bool v2023 = arch.spec.variant == Variant::k2023;
  int salt = 1;
  for (ConvWeights& c : w.convs) {
    const float s = (c.in_channels <= 3 ? 0.5f : 0.25f) * (!v2023 && salt == 1 ? 1.0f / 255 : 1.0f);
    for (size_t j = 0; j < c.kernel.size(); ++j) c.kernel[j] = s * Hash(j, salt);
    for (size_t j = 0; j < c.bias.size(); ++j) c.bias[j] = 0.1f * Hash(j, salt + 50);
    ++salt;
  }
  for (size_t b = 0; b < w.batch_norms.size(); ++b) {
    BatchNormWeights& bn = w.batch_norms[b];
    const bool input_bn = v2023 && b == 0;
    for (int j = 0; j < bn.channels; ++j) {
      bn.gamma[j] = 1.0f + 0.25f * Hash(j, 200 + b);
      bn.beta[j] = 0.1f * Hash(j, 300 + b);
      bn.moving_mean[j] =
          input_bn ? 0.5f + 0.1f * Hash(j, 400 + b) : 0.3f + 0.2f * Hash(j, 400 + b);
      bn.moving_variance[j] = input_bn ? 0.0625f : 0.75f + 0.25f * Hash(j, 500 + b);
    }
  }
  for (size_t j = 0; j < w.dense.kernel.size(); ++j) w.dense.kernel[j] = 1.5f * Hash(j, 600);
  for (size_t j = 0; j < w.dense.bias.size(); ++j) w.dense.bias[j] = 0.1f * Hash(j, 700);
  return w;
}

inline std::vector<uint8_t> Image(const InputShape& s, int index) {
  std::vector<uint8_t> px;
  for (int y = 0; y < s.height; ++y) {
    for (int x = 0; x < s.width; ++x) {
      for (int c = 0; c < s.channels; ++c) {
        const int v = (x * (3 + index % 5) + y * (7 + index % 3) + c * 61 + index * 37 +
                       ((x * y + index) % 11) * 9) %
                      256;
        px.push_back(static_cast<uint8_t>(v));
      }
    }
  }
  return px;
}

// Calibrated on 150 formula images (indices 0..149); the golden images are 0..kImages-1.
inline Graph QuantizedGoldenModel(Variant v) {
  const Architecture arch = *BuildArchitecture(GoldenSpec(v));
  Dataset d;
  d.shape = arch.spec.input;
  for (int i = 0; i < arch.spec.classes; ++i) d.class_names.push_back(std::to_string(i));
  std::vector<int64_t> idx;
  for (int i = 0; i < 150; ++i) {
    const std::vector<uint8_t> img = Image(d.shape, i);
    d.images.insert(d.images.end(), img.begin(), img.end());
    d.labels.push_back(i % arch.spec.classes);
    idx.push_back(i);
  }
  // The converter's own min/max ranges: the golden outputs check the kernels on that graph.
  QuantizeOptions converter;
  converter.equalize = false;
  converter.logit_span = 0;
  return *QuantizeModel(arch, GoldenWeights(arch), d, idx, kMinRepresentativeImages, converter);
}

}  // namespace golden
}  // namespace nanonas

#endif  // NANONAS_TESTS_EXPORT_GOLDEN_MODEL_H_
