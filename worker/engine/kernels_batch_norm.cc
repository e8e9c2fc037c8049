// BatchNormKernel (kernels.h): per-channel statistics, coefficients and the affine apply, in
// phases so that a batch cut into parts is normalised side by side.
#include <algorithm>
#include <cmath>

#include "worker/engine/kernels.h"
#include "worker/engine/kernels_internal.h"

namespace nanonas::engine {
namespace {

// Per-element accumulation over the period: acc0[j] += x[j], acc1[j] += x[j]^2 (square = true).
NANONAS_VECTOR_CLONES
void AccumulatePeriod(const float* __restrict x, int64_t total, int period, double* __restrict acc0,
                      double* __restrict acc1) {
  const int64_t full = total / period * period;
  for (int64_t i = 0; i < full; i += period) {
    const float* xp = x + i;
    for (int j = 0; j < period; ++j) {
      const double v = xp[j];
      acc0[j] += v;
      acc1[j] += v * v;
    }
  }
  for (int64_t i = full; i < total; ++i) {
    const double v = x[i];
    acc0[i - full] += v;
    acc1[i - full] += v * v;
  }
}

// acc0[j] += dy'[j], acc1[j] += dy'[j] * x[j], with dy' = dy masked by y > 0 when relu.
NANONAS_VECTOR_CLONES
void AccumulateBackward(const float* __restrict x, const float* __restrict y,
                        const float* __restrict dy, int64_t total, int period, bool relu,
                        double* __restrict acc0, double* __restrict acc1) {
  const int64_t full = total / period * period;
  for (int64_t i = 0; i < full; i += period) {
    const float* xp = x + i;
    const float* yp = y + i;
    const float* gp = dy + i;
    if (relu) {
      for (int j = 0; j < period; ++j) {
        const double g = yp[j] > 0.f ? gp[j] : 0.f;
        acc0[j] += g;
        acc1[j] += g * xp[j];
      }
    } else {
      for (int j = 0; j < period; ++j) {
        const double g = gp[j];
        acc0[j] += g;
        acc1[j] += g * xp[j];
      }
    }
  }
  for (int64_t i = full; i < total; ++i) {
    const double g = (!relu || y[i] > 0.f) ? dy[i] : 0.f;
    acc0[i - full] += g;
    acc1[i - full] += g * x[i];
  }
}

// y[j] = a[j] x[j] + b[j] over the period (then ReLU).
NANONAS_VECTOR_CLONES
void AffinePeriod(const float* __restrict x, int64_t total, int period, const float* __restrict a,
                  const float* __restrict b, bool relu, float* y) {
  const int64_t full = total / period * period;
  for (int64_t i = 0; i < full; i += period) {
    const float* xp = x + i;
    float* yp = y + i;
    if (relu) {
      for (int j = 0; j < period; ++j) yp[j] = std::max(xp[j] * a[j] + b[j], 0.f);
    } else {
      for (int j = 0; j < period; ++j) yp[j] = xp[j] * a[j] + b[j];
    }
  }
  for (int64_t i = full; i < total; ++i) {
    const float v = x[i] * a[i - full] + b[i - full];
    y[i] = relu ? std::max(v, 0.f) : v;
  }
}

// dx[j] = a[j] dy'[j] + b[j] x[j] + c[j] over the period (dy' masked by y > 0 when relu).
NANONAS_VECTOR_CLONES
void BackwardPeriod(const float* __restrict x, const float* __restrict y, const float* dy,
                    int64_t total, int period, bool relu, const float* __restrict a,
                    const float* __restrict b, const float* __restrict c, float* dx) {
  const int64_t full = total / period * period;
  for (int64_t i = 0; i < full; i += period) {
    const float* xp = x + i;
    const float* yp = y + i;
    const float* gp = dy + i;
    float* dp = dx + i;
    if (relu) {
      for (int j = 0; j < period; ++j) {
        const float g = yp[j] > 0.f ? gp[j] : 0.f;
        dp[j] = a[j] * g + b[j] * xp[j] + c[j];
      }
    } else {
      for (int j = 0; j < period; ++j) dp[j] = a[j] * gp[j] + b[j] * xp[j] + c[j];
    }
  }
  for (int64_t i = full; i < total; ++i) {
    const int j = static_cast<int>(i - full);
    const float g = (!relu || y[i] > 0.f) ? dy[i] : 0.f;
    dx[i] = a[j] * g + b[j] * x[i] + c[j];
  }
}

}  // namespace

BatchNormKernel::BatchNormKernel(int channels, int slots) : channels_(channels) {
  period_ = kernels_internal::ChannelPeriod(channels);
  acc0_.resize(static_cast<size_t>(std::max(1, slots)) * period_);
  acc1_.resize(static_cast<size_t>(std::max(1, slots)) * period_);
  sum_.resize(period_);
  tot0_.resize(channels);
  tot1_.resize(channels);
  pa_.resize(period_);
  pb_.resize(period_);
  pc_.resize(period_);
  ca_.resize(channels);
  cb_.resize(channels);
  cc_.resize(channels);
}

void BatchNormKernel::Fold(const std::vector<double>& acc, int used, double* out) {
  const int span = period_;
  for (int j = 0; j < span; ++j) {
    double s = 0;
    for (int t = 0; t < used; ++t) s += acc[static_cast<size_t>(t) * span + j];
    sum_[j] = s;
  }
  std::fill(out, out + channels_, 0.0);
  for (int j = 0; j < span; ++j) out[j % channels_] += sum_[j];
}

void BatchNormKernel::Spread(const float* per_channel, float* pattern) const {
  for (int j = 0; j < period_; ++j) pattern[j] = per_channel[j % channels_];
}

void BatchNormKernel::ForwardStats(const float* x, int64_t rows, int slot) {
  double* a0 = Slot(acc0_, slot);
  double* a1 = Slot(acc1_, slot);
  std::fill(a0, a0 + period_, 0.0);
  std::fill(a1, a1 + period_, 0.0);
  AccumulatePeriod(x, rows * channels_, period_, a0, a1);
}

void BatchNormKernel::ForwardFinish(int used_slots, int64_t total_rows, const float* gamma,
                                    const float* beta, float epsilon, float momentum, float* mean,
                                    float* invstd, float* moving_mean, float* moving_variance) {
  Fold(acc0_, used_slots, tot0_.data());
  Fold(acc1_, used_slots, tot1_.data());
  const double m = static_cast<double>(total_rows);
  for (int c = 0; c < channels_; ++c) {
    const double mu = tot0_[c] / m;
    const double var = std::max(tot1_[c] / m - mu * mu, 0.0);
    mean[c] = static_cast<float>(mu);
    invstd[c] = static_cast<float>(1.0 / std::sqrt(var + epsilon));
    const double unbiased = total_rows > 1 ? var * m / (m - 1) : var;
    moving_mean[c] = static_cast<float>(moving_mean[c] * momentum + mu * (1.0 - momentum));
    moving_variance[c] =
        static_cast<float>(moving_variance[c] * momentum + unbiased * (1.0 - momentum));
    ca_[c] = gamma[c] * invstd[c];
    cb_[c] = beta[c] - mean[c] * ca_[c];
  }
  Spread(ca_.data(), pa_.data());
  Spread(cb_.data(), pb_.data());
}

void BatchNormKernel::InferenceCoefficients(const float* gamma, const float* beta,
                                            const float* moving_mean, const float* moving_variance,
                                            float epsilon) {
  for (int c = 0; c < channels_; ++c) {
    const float inv = 1.0f / std::sqrt(moving_variance[c] + epsilon);
    ca_[c] = gamma[c] * inv;
    cb_[c] = beta[c] - moving_mean[c] * ca_[c];
  }
  Spread(ca_.data(), pa_.data());
  Spread(cb_.data(), pb_.data());
}

void BatchNormKernel::Apply(const float* x, int64_t rows, bool relu, float* y) const {
  AffinePeriod(x, rows * channels_, period_, pa_.data(), pb_.data(), relu, y);
}

void BatchNormKernel::BackwardStats(const float* x, const float* y, const float* dy, int64_t rows,
                                    bool relu, int slot) {
  double* a0 = Slot(acc0_, slot);
  double* a1 = Slot(acc1_, slot);
  std::fill(a0, a0 + period_, 0.0);
  std::fill(a1, a1 + period_, 0.0);
  AccumulateBackward(x, y, dy, rows * channels_, period_, relu, a0, a1);
}

void BatchNormKernel::BackwardFinish(int used_slots, int64_t total_rows, const float* gamma,
                                     const float* mean, const float* invstd, float* dgamma,
                                     float* dbeta) {
  Fold(acc0_, used_slots, tot0_.data());  // sum dy'
  Fold(acc1_, used_slots, tot1_.data());  // sum dy' x
  const double m = static_cast<double>(total_rows);
  for (int c = 0; c < channels_; ++c) {
    const double s = invstd[c];
    const double db = tot0_[c];
    const double dg = s * (tot1_[c] - mean[c] * db);  // sum dy' * xhat
    dgamma[c] = static_cast<float>(dg);
    dbeta[c] = static_cast<float>(db);
    // dx = k (dy' - dbeta/M - xhat dgamma/M), k = gamma invstd, xhat = (x - mean) invstd.
    const double k = gamma[c] * s;
    ca_[c] = static_cast<float>(k);
    cb_[c] = static_cast<float>(-k * s * dg / m);
    cc_[c] = static_cast<float>(-k * db / m + k * s * dg * mean[c] / m);
  }
  Spread(ca_.data(), pa_.data());
  Spread(cb_.data(), pb_.data());
  Spread(cc_.data(), pc_.data());
}

void BatchNormKernel::BackwardApply(const float* x, const float* y, const float* dy, int64_t rows,
                                    bool relu, float* dx) const {
  BackwardPeriod(x, y, dy, rows * channels_, period_, relu, pa_.data(), pb_.data(), pc_.data(), dx);
}

void BatchNormKernel::ForwardTraining(const float* x, int64_t rows, const float* gamma,
                                      const float* beta, float epsilon, float momentum, bool relu,
                                      float* y, float* mean, float* invstd, float* moving_mean,
                                      float* moving_variance) {
  ForwardStats(x, rows, 0);
  ForwardFinish(1, rows, gamma, beta, epsilon, momentum, mean, invstd, moving_mean,
                moving_variance);
  Apply(x, rows, relu, y);
}

void BatchNormKernel::ForwardInference(const float* x, int64_t rows, const float* gamma,
                                       const float* beta, const float* moving_mean,
                                       const float* moving_variance, float epsilon, bool relu,
                                       float* y) {
  InferenceCoefficients(gamma, beta, moving_mean, moving_variance, epsilon);
  Apply(x, rows, relu, y);
}

void BatchNormKernel::Backward(const float* x, const float* y, const float* dy, int64_t rows,
                               const float* gamma, const float* mean, const float* invstd,
                               bool relu, float* dgamma, float* dbeta, float* dx) {
  BackwardStats(x, y, dy, rows, relu, 0);
  BackwardFinish(1, rows, gamma, mean, invstd, dgamma, dbeta);
  if (dx != nullptr) BackwardApply(x, y, dy, rows, relu, dx);
}

}  // namespace nanonas::engine
