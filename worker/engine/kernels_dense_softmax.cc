// The classifier head's kernels (kernels.h): the dense layer forward and backward, softmax
// cross-entropy and softmax. Plain loops on the calling thread (a few hundred values per image).
#include <algorithm>
#include <cmath>

#include "worker/engine/kernels.h"

namespace nanonas::engine {

void DenseForward(const float* x, int n, int in, int out, const float* kernel, const float* bias,
                  float* y) {
  for (int b = 0; b < n; ++b) {
    const float* xb = x + static_cast<int64_t>(b) * in;
    for (int o = 0; o < out; ++o) {
      const float* ko = kernel + static_cast<int64_t>(o) * in;
      float s = bias[o];
      for (int i = 0; i < in; ++i) s += ko[i] * xb[i];
      y[static_cast<int64_t>(b) * out + o] = s;
    }
  }
}

void DenseBackward(const float* x, const float* dy, int n, int in, int out, const float* kernel,
                   float* dkernel, float* dbias, float* dx) {
  std::fill(dkernel, dkernel + static_cast<int64_t>(out) * in, 0.f);
  std::fill(dbias, dbias + out, 0.f);
  for (int b = 0; b < n; ++b) {
    const float* xb = x + static_cast<int64_t>(b) * in;
    for (int o = 0; o < out; ++o) {
      const float g = dy[static_cast<int64_t>(b) * out + o];
      dbias[o] += g;
      float* dk = dkernel + static_cast<int64_t>(o) * in;
      for (int i = 0; i < in; ++i) dk[i] += g * xb[i];
    }
  }
  if (dx != nullptr) DenseBackwardInput(dy, n, in, out, kernel, dx);
}

void DenseBackwardInput(const float* dy, int n, int in, int out, const float* kernel, float* dx) {
  for (int b = 0; b < n; ++b) {
    float* dxb = dx + static_cast<int64_t>(b) * in;
    std::fill(dxb, dxb + in, 0.f);
    for (int o = 0; o < out; ++o) {
      const float g = dy[static_cast<int64_t>(b) * out + o];
      const float* ko = kernel + static_cast<int64_t>(o) * in;
      for (int i = 0; i < in; ++i) dxb[i] += g * ko[i];
    }
  }
}

double SoftmaxCrossEntropy(const float* logits, const int32_t* labels, int n, int k, float* probs,
                           float* dlogits, int* correct) {
  double loss = 0;
  int hits = 0;
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int b = 0; b < n; ++b) {
    const float* l = logits + static_cast<int64_t>(b) * k;
    int arg = 0;
    for (int j = 1; j < k; ++j) {
      if (l[j] > l[arg]) arg = j;
    }
    const float mx = l[arg];
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(static_cast<double>(l[j] - mx));
    const double log_sum = std::log(sum);
    const int y = labels[b];
    loss += log_sum - static_cast<double>(l[y] - mx);
    if (arg == y) ++hits;
    for (int j = 0; j < k; ++j) {
      const float p = static_cast<float>(std::exp(static_cast<double>(l[j] - mx) - log_sum));
      if (probs != nullptr) probs[static_cast<int64_t>(b) * k + j] = p;
      if (dlogits != nullptr) {
        dlogits[static_cast<int64_t>(b) * k + j] = (p - (j == y ? 1.f : 0.f)) * inv_n;
      }
    }
  }
  if (correct != nullptr) *correct = hits;
  return loss;
}

void Softmax(const float* logits, int n, int k, float* probs) {
  for (int b = 0; b < n; ++b) {
    const float* l = logits + static_cast<int64_t>(b) * k;
    const float mx = *std::max_element(l, l + k);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(static_cast<double>(l[j] - mx));
    for (int j = 0; j < k; ++j) {
      probs[static_cast<int64_t>(b) * k + j] =
          static_cast<float>(std::exp(static_cast<double>(l[j] - mx)) / sum);
    }
  }
}

}  // namespace nanonas::engine
