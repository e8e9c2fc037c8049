// Trained parameters of one architecture, in framework-neutral plain layouts. The training engine
// produces them; the quantizer/exporter and the float reference inference consume them.
//
// Thread-safety: plain values without synchronisation; share them const.
#ifndef NANONAS_COMMON_ARCH_WEIGHTS_H_
#define NANONAS_COMMON_ARCH_WEIGHTS_H_

#include <vector>

namespace nanonas {

struct ConvWeights {
  int in_channels = 0, out_channels = 0;
  std::vector<float> kernel;  // (Cout, 3, 3, Cin) "OHWI", as TFLite stores conv filters
  std::vector<float> bias;    // (Cout)
};

struct BatchNormWeights {
  int channels = 0;
  std::vector<float> gamma, beta;                   // (C)
  std::vector<float> moving_mean, moving_variance;  // (C), the inference statistics
  float epsilon = 1e-3f;                            // Keras default
};

struct DenseWeights {
  int in_features = 0, out_features = 0;
  std::vector<float> kernel;  // (out, in), as TFLite's FULLY_CONNECTED stores it
  std::vector<float> bias;    // (out)
};

// For the 2023 variant: batch_norms[0] is the input BatchNorm (after x/255) and batch_norms[i]
// (i = 1..c) is cell i's BatchNorm before its conv. For the 2024 variant: batch_norms[i]
// (i = 0..c) follows conv i. convs[i] (i = 0..c) are the convolutions in order.
struct ModelWeights {
  std::vector<ConvWeights> convs;
  std::vector<BatchNormWeights> batch_norms;
  DenseWeights dense;
};

}  // namespace nanonas

#endif  // NANONAS_COMMON_ARCH_WEIGHTS_H_
