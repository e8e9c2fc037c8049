#include "worker/engine/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <omp.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// GCC 12's AVX-512 conversion intrinsics start from _mm*_undefined_*() and trip this warning.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Hot loops are compiled for AVX-512 and AVX2 too and picked at load time by CPU features, so the
// binary stays portable (Debian's baseline is x86-64) while using the host's vector units. (Not
// "arch=..." clones: those dispatch on the CPU model and fall back to SSE2 on AMD processors.)
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NANONAS_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NANONAS_VECTOR_CLONES
#endif

namespace nanonas::engine {
namespace {

// Splits [0, count) into one contiguous chunk per OpenMP thread (chunk starts aligned to `align`)
// and calls f(begin, end, thread). Serial below `min_count` or with one thread. The split depends
// only on the thread count, so results are reproducible for a given thread count.
template <typename F>
void ParallelChunks(int64_t count, int64_t align, int64_t min_count, int max_threads, F&& f) {
  const int threads = std::min(omp_get_max_threads(), max_threads);
  if (threads <= 1 || count < min_count) {
    f(int64_t{0}, count, 0);
    return;
  }
  const int64_t per = ((count + threads - 1) / threads + align - 1) / align * align;
  auto chunk = [&](int t) {
    const int64_t begin = std::min(count, t * per), end = std::min(count, begin + per);
    if (begin < end) f(begin, end, t);
  };
  // Inside a parallel region (a batch part of the network, network.cc) a nested region would get
  // one thread: run the same chunks in order instead, so the results stay those of `threads`.
  if (omp_in_parallel()) {
    for (int t = 0; t < threads; ++t) chunk(t);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    // The runtime may give fewer threads than asked: every chunk is still done.
    const int team = omp_get_num_threads();
    for (int t = omp_get_thread_num(); t < threads; t += team) chunk(t);
  }
}
constexpr int kAnyThreads = 1 << 20;
constexpr int64_t kMinParallelFloats = 1 << 15;
// The fewest images worth splitting over threads for images of `per_image` floats.
int64_t MinImages(int64_t per_image) {
  return std::max<int64_t>(2, kMinParallelFloats / std::max<int64_t>(per_image, 1));
}

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
  period_ = channels / std::gcd(channels, 16) * 16;
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
                                            const float* moving_mean,
                                            const float* moving_variance, float epsilon) {
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

void BatchNormKernel::BackwardStats(const float* x, const float* y, const float* dy,
                                    int64_t rows, bool relu, int slot) {
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

void BatchNormKernel::BackwardApply(const float* x, const float* y, const float* dy,
                                    int64_t rows, bool relu, float* dx) const {
  BackwardPeriod(x, y, dy, rows * channels_, period_, relu, pa_.data(), pb_.data(), pc_.data(),
                 dx);
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

namespace {
NANONAS_VECTOR_CLONES
void MaxPoolForwardGeneric(const float* x, int n, int h, int w, int c, float* y, uint8_t* ws) {
  const int oh = h / 2, ow = w / 2;
  for (int b = 0; b < n; ++b) {
    for (int i = 0; i < oh; ++i) {
      for (int j = 0; j < ow; ++j) {
        const float* p0 = x + ((static_cast<int64_t>(b) * h + 2 * i) * w + 2 * j) * c;
        const float* p1 = p0 + c;
        const float* p2 = p0 + static_cast<int64_t>(w) * c;
        const float* p3 = p2 + c;
        const int64_t o = ((static_cast<int64_t>(b) * oh + i) * ow + j) * c;
        float* __restrict yo = y + o;
        uint8_t* __restrict wo = ws + o;
        for (int ch = 0; ch < c; ++ch) {
          float m = p0[ch];
          uint8_t k = 0;
          if (p1[ch] > m) { m = p1[ch]; k = 1; }
          if (p2[ch] > m) { m = p2[ch]; k = 2; }
          if (p3[ch] > m) { m = p3[ch]; k = 3; }
          yo[ch] = m;
          wo[ch] = k;
        }
      }
    }
  }
}

}  // namespace

#if defined(__x86_64__) && defined(__GNUC__)
namespace {
// AVX-512 forward: one window's channels per 16-lane step (masked tail), for any c.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void MaxPoolForwardAvx512(
    const float* x, int n, int h, int w, int c, float* y, uint8_t* ws) {
  const int oh = h / 2, ow = w / 2;
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2),
                three = _mm512_set1_epi32(3);
  for (int b = 0; b < n; ++b) {
    for (int i = 0; i < oh; ++i) {
      const float* r0 = x + (static_cast<int64_t>(b) * h + 2 * i) * w * c;
      const float* r1 = r0 + static_cast<int64_t>(w) * c;
      const int64_t o = (static_cast<int64_t>(b) * oh + i) * ow * c;
      for (int j = 0; j < ow; ++j) {
        const float* p0 = r0 + static_cast<int64_t>(2 * j) * c;
        const float* p2 = r1 + static_cast<int64_t>(2 * j) * c;
        float* yo = y + o + static_cast<int64_t>(j) * c;
        uint8_t* wo = ws + o + static_cast<int64_t>(j) * c;
        for (int ch = 0; ch < c; ch += 16) {
          const int left = c - ch;
          const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                         : static_cast<__mmask16>((1u << left) - 1);
          __m512 best = _mm512_maskz_loadu_ps(m, p0 + ch);
          __m512i arg = _mm512_setzero_si512();
          const __m512 v1 = _mm512_maskz_loadu_ps(m, p0 + c + ch);
          __mmask16 gt = _mm512_cmp_ps_mask(v1, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, gt, v1);
          arg = _mm512_mask_mov_epi32(arg, gt, one);
          const __m512 v2 = _mm512_maskz_loadu_ps(m, p2 + ch);
          gt = _mm512_cmp_ps_mask(v2, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, gt, v2);
          arg = _mm512_mask_mov_epi32(arg, gt, two);
          const __m512 v3 = _mm512_maskz_loadu_ps(m, p2 + c + ch);
          gt = _mm512_cmp_ps_mask(v3, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, gt, v3);
          arg = _mm512_mask_mov_epi32(arg, gt, three);
          _mm512_mask_storeu_ps(yo + ch, m, best);
          _mm_mask_storeu_epi8(wo + ch, m, _mm512_cvtepi32_epi8(arg));
        }
      }
    }
  }
}

bool g_allow_avx512 = true;

bool HasAvx512() {
  static const bool avx512 = __builtin_cpu_supports("avx512f") &&
                             __builtin_cpu_supports("avx512bw") &&
                             __builtin_cpu_supports("avx512vl");
  return avx512 && g_allow_avx512;
}
}  // namespace
#endif

void UseAvx512KernelsForTesting(bool enable) {
#if defined(__x86_64__) && defined(__GNUC__)
  g_allow_avx512 = enable;
#endif
}

void MaxPoolForward(const float* x, int n, int h, int w, int c, float* y, uint8_t* ws) {
  auto fn = MaxPoolForwardGeneric;
#if defined(__x86_64__) && defined(__GNUC__)
  if (HasAvx512()) fn = MaxPoolForwardAvx512;
#endif
  const int64_t in = static_cast<int64_t>(h) * w * c;
  const int64_t out = static_cast<int64_t>(h / 2) * (w / 2) * c;
  ParallelChunks(n, 1, MinImages(in),
                 kAnyThreads, [&](int64_t b, int64_t e, int) {
                   fn(x + b * in, static_cast<int>(e - b), h, w, c, y + b * out, ws + b * out);
                 });
}

namespace {
NANONAS_VECTOR_CLONES
void MaxPoolForwardInferenceSerial(const float* x, int n, int h, int w, int c, float* y) {
  const int oh = h / 2, ow = w / 2;
  for (int b = 0; b < n; ++b) {
    for (int i = 0; i < oh; ++i) {
      for (int j = 0; j < ow; ++j) {
        const float* p0 = x + ((static_cast<int64_t>(b) * h + 2 * i) * w + 2 * j) * c;
        const float* p1 = p0 + c;
        const float* p2 = p0 + static_cast<int64_t>(w) * c;
        const float* p3 = p2 + c;
        float* __restrict yo = y + ((static_cast<int64_t>(b) * oh + i) * ow + j) * c;
        for (int ch = 0; ch < c; ++ch) {
          yo[ch] = std::max(std::max(p0[ch], p1[ch]), std::max(p2[ch], p3[ch]));
        }
      }
    }
  }
}
}  // namespace

namespace {
// One output row of max-pool backward: scatters dy (ow*c) into the two input rows by the argmax.
// Separate with __restrict parameters so that GCC vectorises the selects.
NANONAS_VECTOR_CLONES
void MaxPoolBackwardRow(const float* __restrict g, const uint8_t* __restrict k,
                        const float* __restrict relu_y, int ow, int c, float* __restrict top,
                        float* __restrict bottom) {
  for (int j = 0; j < ow; ++j) {
    const float* gj = g + static_cast<int64_t>(j) * c;
    const float* yj = relu_y != nullptr ? relu_y + static_cast<int64_t>(j) * c : nullptr;
    const uint8_t* kj = k + static_cast<int64_t>(j) * c;
    float* t = top + static_cast<int64_t>(2 * j) * c;
    float* b = bottom + static_cast<int64_t>(2 * j) * c;
    for (int ch = 0; ch < c; ++ch) {
      const float gv = yj == nullptr ? gj[ch] : gj[ch] * static_cast<float>(yj[ch] > 0.f);
      const int kk = kj[ch];
      // Multiplications by 0/1 rather than selects: GCC turns the selects into masked stores with
      // branches, 10x slower.
      t[ch] = gv * static_cast<float>(kk == 0);
      t[c + ch] = gv * static_cast<float>(kk == 1);
      b[ch] = gv * static_cast<float>(kk == 2);
      b[c + ch] = gv * static_cast<float>(kk == 3);
    }
  }
}
}  // namespace

#if defined(__x86_64__) && defined(__GNUC__)
// AVX-512 version: one window's channels in 16-lane steps (masked tail), whatever c is. GCC's
// auto-vectorised loop above only vectorises c >= 31 and NanoNAS layers are mostly narrower.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void MaxPoolBackwardRowAvx512(
    const float* __restrict g, const uint8_t* __restrict k, const float* __restrict relu_y, int ow,
    int c, float* __restrict top, float* __restrict bottom) {
  const __m512i k1 = _mm512_set1_epi32(1), k2 = _mm512_set1_epi32(2), k3 = _mm512_set1_epi32(3);
  for (int j = 0; j < ow; ++j) {
    const float* gj = g + static_cast<int64_t>(j) * c;
    const uint8_t* kj = k + static_cast<int64_t>(j) * c;
    float* t = top + static_cast<int64_t>(2 * j) * c;
    float* b = bottom + static_cast<int64_t>(2 * j) * c;
    for (int ch = 0; ch < c; ch += 16) {
      const int left = c - ch;
      const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                                     : static_cast<__mmask16>((1u << left) - 1);
      __m512 gv = _mm512_maskz_loadu_ps(m, gj + ch);
      if (relu_y != nullptr) {
        const __m512 yv = _mm512_maskz_loadu_ps(m, relu_y + static_cast<int64_t>(j) * c + ch);
        gv = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(yv, _mm512_setzero_ps(), _CMP_GT_OQ), gv);
      }
      const __m512i kv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, kj + ch));
      const __mmask16 is0 = _mm512_testn_epi32_mask(kv, kv);
      const __mmask16 is1 = _mm512_cmpeq_epi32_mask(kv, k1);
      const __mmask16 is2 = _mm512_cmpeq_epi32_mask(kv, k2);
      const __mmask16 is3 = _mm512_cmpeq_epi32_mask(kv, k3);
      _mm512_mask_storeu_ps(t + ch, m, _mm512_maskz_mov_ps(is0, gv));
      _mm512_mask_storeu_ps(t + c + ch, m, _mm512_maskz_mov_ps(is1, gv));
      _mm512_mask_storeu_ps(b + ch, m, _mm512_maskz_mov_ps(is2, gv));
      _mm512_mask_storeu_ps(b + c + ch, m, _mm512_maskz_mov_ps(is3, gv));
    }
  }
}
#endif

void MaxPoolBackward(const float* dy, const uint8_t* ws, int n, int h, int w, int c, float* dx,
                     const float* relu_y) {
#if defined(__x86_64__) && defined(__GNUC__)
  auto row_fn = HasAvx512() ? MaxPoolBackwardRowAvx512 : MaxPoolBackwardRow;
#else
  auto row_fn = MaxPoolBackwardRow;
#endif
  const int oh = h / 2, ow = w / 2;
  const int64_t row = static_cast<int64_t>(w) * c;
  const int64_t in = h * row;
  ParallelChunks(n, 1, MinImages(in),
                 kAnyThreads, [&](int64_t b0, int64_t b1, int) {
  for (int64_t b = b0; b < b1; ++b) {
    float* img = dx + b * h * row;
    for (int i = 0; i < oh; ++i) {
      const int64_t o = (b * oh + i) * ow * c;
      row_fn(dy + o, ws + o, relu_y != nullptr ? relu_y + o : nullptr, ow, c, img + (2 * i) * row,
             img + (2 * i + 1) * row);
      if (w > 2 * ow) {  // odd width: the last column got no gradient
        const int64_t tail = (w - 2 * ow) * static_cast<int64_t>(c);
        std::memset(img + (2 * i) * row + 2 * ow * static_cast<int64_t>(c), 0,
                    tail * sizeof(float));
        std::memset(img + (2 * i + 1) * row + 2 * ow * static_cast<int64_t>(c), 0,
                    tail * sizeof(float));
      }
    }
    if (h > 2 * oh) std::memset(img + 2 * oh * row, 0, (h - 2 * oh) * row * sizeof(float));
  }
  });
}

namespace {
NANONAS_VECTOR_CLONES
void GlobalAvgPoolForwardSerial(const float* x, int n, int hw, int c, float* y) {
  const float scale = 1.0f / static_cast<float>(hw);
  // Narrow channel counts: accumulate the flat image over a period P (multiple of c and 16) so
  // that the loop vectorises, then fold the period into the channels.
  const int period = c / std::gcd(c, 16) * 16;
  if (c % 16 != 0 && period <= 256) {
    float acc[256];
    for (int b = 0; b < n; ++b) {
      const float* xb = x + static_cast<int64_t>(b) * hw * c;
      const int64_t total = static_cast<int64_t>(hw) * c;
      const int64_t full = total / period * period;
      for (int j = 0; j < period; ++j) acc[j] = 0.f;
      for (int64_t i = 0; i < full; i += period) {
        for (int j = 0; j < period; ++j) acc[j] += xb[i + j];
      }
      for (int64_t i = full; i < total; ++i) acc[i - full] += xb[i];
      float* yo = y + static_cast<int64_t>(b) * c;
      for (int ch = 0; ch < c; ++ch) yo[ch] = 0.f;
      for (int j = 0; j < period; ++j) yo[j % c] += acc[j];
      for (int ch = 0; ch < c; ++ch) yo[ch] *= scale;
    }
    return;
  }
  for (int b = 0; b < n; ++b) {
    float* __restrict yo = y + static_cast<int64_t>(b) * c;
    const float* xb = x + static_cast<int64_t>(b) * hw * c;
    for (int ch = 0; ch < c; ++ch) yo[ch] = 0.f;
    for (int p = 0; p < hw; ++p) {
      const float* xp = xb + static_cast<int64_t>(p) * c;
      for (int ch = 0; ch < c; ++ch) yo[ch] += xp[ch];
    }
    for (int ch = 0; ch < c; ++ch) yo[ch] *= scale;
  }
}
}  // namespace

namespace {
NANONAS_VECTOR_CLONES
void GlobalAvgPoolBackwardSerial(const float* dy, int n, int hw, int c, float* dx,
                                 const float* relu_x) {
  const float scale = 1.0f / static_cast<float>(hw);
  // The flat image is written over a period P (multiple of c and 16) holding dy * scale in
  // channel order, so that the loop vectorises for any c.
  const int period = c / std::gcd(c, 16) * 16;
  const int64_t total = static_cast<int64_t>(hw) * c;
  if (period <= 256) {
    float pattern[256];
    for (int b = 0; b < n; ++b) {
      const float* g = dy + static_cast<int64_t>(b) * c;
      for (int j = 0; j < period; ++j) pattern[j] = g[j % c] * scale;
      float* db = dx + static_cast<int64_t>(b) * total;
      const float* xb = relu_x != nullptr ? relu_x + static_cast<int64_t>(b) * total : nullptr;
      const int64_t full = total / period * period;
      for (int64_t i = 0; i < full; i += period) {
        float* __restrict d = db + i;
        if (xb != nullptr) {
          const float* __restrict xp = xb + i;
          for (int j = 0; j < period; ++j) d[j] = pattern[j] * static_cast<float>(xp[j] > 0.f);
        } else {
          for (int j = 0; j < period; ++j) d[j] = pattern[j];
        }
      }
      for (int64_t i = full; i < total; ++i) {
        db[i] = pattern[i - full] * (xb == nullptr ? 1.f : static_cast<float>(xb[i] > 0.f));
      }
    }
    return;
  }
  for (int b = 0; b < n; ++b) {
    const float* g = dy + static_cast<int64_t>(b) * c;
    float* db = dx + static_cast<int64_t>(b) * total;
    for (int p = 0; p < hw; ++p) {
      float* __restrict dp = db + static_cast<int64_t>(p) * c;
      const float* xp =
          relu_x != nullptr ? relu_x + (static_cast<int64_t>(b) * hw + p) * c : nullptr;
      for (int ch = 0; ch < c; ++ch) {
        dp[ch] = g[ch] * scale * (xp == nullptr ? 1.f : static_cast<float>(xp[ch] > 0.f));
      }
    }
  }
}
}  // namespace

void DropoutForward(const float* x, int64_t count, float rate, uint64_t* state, float* mask,
                    float* y) {
  const float keep_scale = 1.0f / (1.0f - rate);
  uint64_t s = *state;
  for (int64_t i = 0; i < count; ++i) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    mask[i] = u >= rate ? keep_scale : 0.f;
    y[i] = x[i] * mask[i];
  }
  *state = s;
}

void DropoutBackward(const float* dy, const float* mask, int64_t count, float* dx) {
  for (int64_t i = 0; i < count; ++i) dx[i] = dy[i] * mask[i];
}

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

namespace {
NANONAS_VECTOR_CLONES
void AdamUpdateSerial(float* __restrict w, const float* __restrict g, float* __restrict m,
                float* __restrict v, int64_t count, float lr_t, float beta1, float beta2,
                float epsilon) {
  const float c1 = 1.f - beta1, c2 = 1.f - beta2;
  for (int64_t i = 0; i < count; ++i) {
    m[i] = beta1 * m[i] + c1 * g[i];
    v[i] = beta2 * v[i] + c2 * g[i] * g[i];
    w[i] -= lr_t * m[i] / (std::sqrt(v[i]) + epsilon);
  }
}
}  // namespace

NANONAS_VECTOR_CLONES
void AccumulateInto(float* __restrict acc, const float* __restrict x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) acc[i] += x[i];
}

namespace {
NANONAS_VECTOR_CLONES
void ReluInPlaceSerial(float* __restrict y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = std::max(y[i], 0.f);
}
}  // namespace

namespace {
NANONAS_VECTOR_CLONES
void ReluBackwardInPlaceSerial(const float* __restrict y, int64_t count, float* __restrict dy) {
  for (int64_t i = 0; i < count; ++i) dy[i] = y[i] > 0.f ? dy[i] : 0.f;
}
}  // namespace

namespace {
NANONAS_VECTOR_CLONES
void GatherImagesSerial(const uint8_t* images, int64_t image_bytes, const int64_t* indices, int n,
                  float scale, float* out) {
  for (int b = 0; b < n; ++b) {
    const uint8_t* __restrict src = images + indices[b] * image_bytes;
    float* __restrict dst = out + static_cast<int64_t>(b) * image_bytes;
    for (int64_t j = 0; j < image_bytes; ++j) dst[j] = static_cast<float>(src[j]) * scale;
  }
}
}  // namespace

void MaxPoolForwardInference(const float* x, int n, int h, int w, int c, float* y) {
  const int64_t in = static_cast<int64_t>(h) * w * c;
  const int64_t out = static_cast<int64_t>(h / 2) * (w / 2) * c;
  ParallelChunks(n, 1, MinImages(in),
                 kAnyThreads, [&](int64_t b, int64_t e, int) {
                   MaxPoolForwardInferenceSerial(x + b * in, static_cast<int>(e - b), h, w, c,
                                                 y + b * out);
                 });
}

void GlobalAvgPoolForward(const float* x, int n, int hw, int c, float* y) {
  const int64_t in = static_cast<int64_t>(hw) * c;
  ParallelChunks(n, 1, MinImages(in),
                 kAnyThreads, [&](int64_t b, int64_t e, int) {
                   GlobalAvgPoolForwardSerial(x + b * in, static_cast<int>(e - b), hw, c,
                                              y + b * c);
                 });
}

void GlobalAvgPoolBackward(const float* dy, int n, int hw, int c, float* dx, const float* relu_x) {
  const int64_t in = static_cast<int64_t>(hw) * c;
  ParallelChunks(n, 1, MinImages(in),
                 kAnyThreads, [&](int64_t b, int64_t e, int) {
                   GlobalAvgPoolBackwardSerial(dy + b * c, static_cast<int>(e - b), hw, c,
                                               dx + b * in,
                                               relu_x != nullptr ? relu_x + b * in : nullptr);
                 });
}

void AdamUpdate(float* w, const float* g, float* m, float* v, int64_t count, float lr_t,
                float beta1, float beta2, float epsilon) {
  ParallelChunks(count, 16, kMinParallelFloats, kAnyThreads, [&](int64_t b, int64_t e, int) {
    AdamUpdateSerial(w + b, g + b, m + b, v + b, e - b, lr_t, beta1, beta2, epsilon);
  });
}

namespace {
NANONAS_VECTOR_CLONES
void NhwcToBlocked16Image(const float* __restrict src, int64_t hw, int c, float* __restrict dst) {
  const int blocks = c / 16;
  for (int b = 0; b < blocks; ++b) {
    float* __restrict d = dst + b * hw * 16;
    const float* __restrict s = src + b * 16;
    for (int64_t p = 0; p < hw; ++p) {
      for (int j = 0; j < 16; ++j) d[p * 16 + j] = s[p * c + j];
    }
  }
}
NANONAS_VECTOR_CLONES
void Blocked16ToNhwcImage(const float* __restrict src, int64_t hw, int c, bool relu,
                          float* __restrict dst) {
  const int blocks = c / 16;
  for (int b = 0; b < blocks; ++b) {
    const float* __restrict s = src + b * hw * 16;
    float* __restrict d = dst + b * 16;
    if (relu) {
      for (int64_t p = 0; p < hw; ++p) {
        for (int j = 0; j < 16; ++j) d[p * c + j] = std::max(s[p * 16 + j], 0.f);
      }
    } else {
      for (int64_t p = 0; p < hw; ++p) {
        for (int j = 0; j < 16; ++j) d[p * c + j] = s[p * 16 + j];
      }
    }
  }
}
}  // namespace

void NhwcToBlocked16(const float* src, int n, int64_t hw, int c, float* dst) {
  const int64_t per = hw * c;
  ParallelChunks(n, 1, MinImages(per), kAnyThreads, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) NhwcToBlocked16Image(src + i * per, hw, c, dst + i * per);
  });
}

void Blocked16ToNhwc(const float* src, int n, int64_t hw, int c, bool relu, float* dst) {
  const int64_t per = hw * c;
  ParallelChunks(n, 1, MinImages(per), kAnyThreads, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) Blocked16ToNhwcImage(src + i * per, hw, c, relu, dst + i * per);
  });
}

void ReluInPlace(float* y, int64_t count) {
  ParallelChunks(count, 16, kMinParallelFloats, kAnyThreads,
                 [&](int64_t b, int64_t e, int) { ReluInPlaceSerial(y + b, e - b); });
}

void ReluBackwardInPlace(const float* y, int64_t count, float* dy) {
  ParallelChunks(count, 16, kMinParallelFloats, kAnyThreads, [&](int64_t b, int64_t e, int) {
    ReluBackwardInPlaceSerial(y + b, e - b, dy + b);
  });
}

void GatherImages(const uint8_t* images, int64_t image_bytes, const int64_t* indices, int n,
                  float scale, float* out) {
  ParallelChunks(n, 1, MinImages(image_bytes),
                 kAnyThreads, [&](int64_t b, int64_t e, int) {
                   GatherImagesSerial(images, image_bytes, indices + b, static_cast<int>(e - b),
                                      scale, out + b * image_bytes);
                 });
}

}  // namespace nanonas::engine
