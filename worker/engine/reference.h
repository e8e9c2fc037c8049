// Naive reference implementations of every layer and of whole-network float inference, in double
// precision and written as the textbook loops, for tests against the fast engine. NHWC, batch
// first. Not for production use: slow on purpose.
//
// Thread-safety: pure functions, safe to call from any thread.
#ifndef NANONAS_WORKER_ENGINE_REFERENCE_H_
#define NANONAS_WORKER_ENGINE_REFERENCE_H_

#include <cstdint>
#include <vector>

#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"

namespace nanonas::engine::reference {

using Vec = std::vector<double>;

// 3x3 SAME stride-1 convolution with bias; kernel OHWI (cout, 3, 3, cin); optional ReLU.
Vec Conv3x3(const Vec& x, int n, int h, int w, int cin, const Vec& kernel, const Vec& bias,
            int cout, bool relu);
// Batch norm over (rows, C): training (batch mean, biased variance) or with given statistics.
Vec BatchNormTraining(const Vec& x, int64_t rows, int c, const Vec& gamma, const Vec& beta,
                      double epsilon, bool relu);
Vec BatchNormInference(const Vec& x, int64_t rows, int c, const Vec& gamma, const Vec& beta,
                       const Vec& mean, const Vec& variance, double epsilon, bool relu);
Vec MaxPool2x2(const Vec& x, int n, int h, int w, int c);
Vec GlobalAvgPool(const Vec& x, int n, int h, int w, int c);
Vec Dense(const Vec& x, int n, int in, const Vec& kernel /*(out, in)*/, const Vec& bias, int out);
// Mean softmax cross-entropy.
double SoftmaxCrossEntropy(const Vec& logits, const std::vector<int32_t>& labels, int n, int k);
Vec Softmax(const Vec& logits, int n, int k);

// Whole-network float inference (moving statistics, no dropout): logits (N, classes).
Vec InferLogits(const Architecture& arch, const ModelWeights& weights, const Dataset& data,
                const std::vector<int64_t>& indices);

}  // namespace nanonas::engine::reference

#endif  // NANONAS_WORKER_ENGINE_REFERENCE_H_
