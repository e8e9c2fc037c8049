// Pooling kernels (kernels.h): max pooling 2x2/2 forward and backward (portable and AVX-512
// paths, the AVX-512 one picked at run time) and global average pooling, each split over whole
// images by ParallelChunks.
#include <algorithm>
#include <cstring>

#include "worker/engine/kernels.h"
#include "worker/engine/kernels_internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// GCC 12's AVX-512 conversion intrinsics start from _mm*_undefined_*() and trip this warning.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace nanonas::engine {
namespace {

using kernels_internal::ChannelPeriod;
using kernels_internal::kAnyThreads;
using kernels_internal::MinImages;
using kernels_internal::ParallelChunks;

// The four inputs of pooling window (b, i, j) of x (N, H, W, C), in the order (0,0), (0,1), (1,0),
// (1,1), and the offset of its output in y (N, H/2, W/2, C).
struct Window2x2 {
  const float *p0, *p1, *p2, *p3;
  int64_t out;
};
inline Window2x2 WindowAt(const float* x, int b, int i, int j, int h, int w, int c) {
  Window2x2 win;
  win.p0 = x + ((static_cast<int64_t>(b) * h + 2 * i) * w + 2 * j) * c;
  win.p1 = win.p0 + c;
  win.p2 = win.p0 + static_cast<int64_t>(w) * c;
  win.p3 = win.p2 + c;
  win.out = ((static_cast<int64_t>(b) * (h / 2) + i) * (w / 2) + j) * c;
  return win;
}

NANONAS_VECTOR_CLONES
void MaxPoolForwardGeneric(const float* x, int n, int h, int w, int c, float* y, uint8_t* ws) {
  const int oh = h / 2, ow = w / 2;
  for (int b = 0; b < n; ++b) {
    for (int i = 0; i < oh; ++i) {
      for (int j = 0; j < ow; ++j) {
        const auto [p0, p1, p2, p3, o] = WindowAt(x, b, i, j, h, w, c);
        float* __restrict yo = y + o;
        uint8_t* __restrict wo = ws + o;
        for (int ch = 0; ch < c; ++ch) {
          float m = p0[ch];
          uint8_t k = 0;
          if (p1[ch] > m) {
            m = p1[ch];
            k = 1;
          }
          if (p2[ch] > m) {
            m = p2[ch];
            k = 2;
          }
          if (p3[ch] > m) {
            m = p3[ch];
            k = 3;
          }
          yo[ch] = m;
          wo[ch] = k;
        }
      }
    }
  }
}

NANONAS_VECTOR_CLONES
void MaxPoolForwardInferenceSerial(const float* x, int n, int h, int w, int c, float* y) {
  const int oh = h / 2, ow = w / 2;
  for (int b = 0; b < n; ++b) {
    for (int i = 0; i < oh; ++i) {
      for (int j = 0; j < ow; ++j) {
        const auto [p0, p1, p2, p3, o] = WindowAt(x, b, i, j, h, w, c);
        float* __restrict yo = y + o;
        for (int ch = 0; ch < c; ++ch) {
          yo[ch] = std::max(std::max(p0[ch], p1[ch]), std::max(p2[ch], p3[ch]));
        }
      }
    }
  }
}

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

#if defined(__x86_64__) && defined(__GNUC__)
// AVX-512 forward: one window's channels per 16-lane step (masked tail), for any c.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void MaxPoolForwardAvx512(const float* x,
                                                                               int n, int h, int w,
                                                                               int c, float* y,
                                                                               uint8_t* ws) {
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
      const __mmask16 m =
          left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
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

NANONAS_VECTOR_CLONES
void GlobalAvgPoolForwardSerial(const float* x, int n, int hw, int c, float* y) {
  const float scale = 1.0f / static_cast<float>(hw);
  // Narrow channel counts: accumulate the flat image over a period P (multiple of c and 16) so
  // that the loop vectorises, then fold the period into the channels.
  const int period = ChannelPeriod(c);
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

NANONAS_VECTOR_CLONES
void GlobalAvgPoolBackwardSerial(const float* dy, int n, int hw, int c, float* dx,
                                 const float* relu_x) {
  const float scale = 1.0f / static_cast<float>(hw);
  // The flat image is written over a period P (multiple of c and 16) holding dy * scale in
  // channel order, so that the loop vectorises for any c.
  const int period = ChannelPeriod(c);
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
  ParallelChunks(n, 1, MinImages(in), kAnyThreads, [&](int64_t b, int64_t e, int) {
    fn(x + b * in, static_cast<int>(e - b), h, w, c, y + b * out, ws + b * out);
  });
}

void MaxPoolForwardInference(const float* x, int n, int h, int w, int c, float* y) {
  const int64_t in = static_cast<int64_t>(h) * w * c;
  const int64_t out = static_cast<int64_t>(h / 2) * (w / 2) * c;
  ParallelChunks(n, 1, MinImages(in), kAnyThreads, [&](int64_t b, int64_t e, int) {
    MaxPoolForwardInferenceSerial(x + b * in, static_cast<int>(e - b), h, w, c, y + b * out);
  });
}

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
  ParallelChunks(n, 1, MinImages(in), kAnyThreads, [&](int64_t b0, int64_t b1, int) {
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

void GlobalAvgPoolForward(const float* x, int n, int hw, int c, float* y) {
  const int64_t in = static_cast<int64_t>(hw) * c;
  ParallelChunks(n, 1, MinImages(in), kAnyThreads, [&](int64_t b, int64_t e, int) {
    GlobalAvgPoolForwardSerial(x + b * in, static_cast<int>(e - b), hw, c, y + b * c);
  });
}

void GlobalAvgPoolBackward(const float* dy, int n, int hw, int c, float* dx, const float* relu_x) {
  const int64_t in = static_cast<int64_t>(hw) * c;
  ParallelChunks(n, 1, MinImages(in), kAnyThreads, [&](int64_t b, int64_t e, int) {
    GlobalAvgPoolBackwardSerial(dy + b * c, static_cast<int>(e - b), hw, c, dx + b * in,
                                relu_x != nullptr ? relu_x + b * in : nullptr);
  });
}

}  // namespace nanonas::engine
