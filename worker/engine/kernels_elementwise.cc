// Element-wise kernels (kernels.h): dropout, Adam, accumulation, ReLU and its backward, the
// NHWC <-> nChw16c layout changes of the Winograd convolutions and the input gathering. The large
// loops are split over the OpenMP threads by ParallelChunks.
#include <algorithm>
#include <cmath>

#include "worker/engine/kernels.h"
#include "worker/engine/kernels_internal.h"

namespace nanonas::engine {
namespace {

using kernels_internal::kAnyThreads;
using kernels_internal::kMinParallelFloats;
using kernels_internal::MinImages;
using kernels_internal::ParallelChunks;

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

NANONAS_VECTOR_CLONES
void ReluInPlaceSerial(float* __restrict y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = std::max(y[i], 0.f);
}

NANONAS_VECTOR_CLONES
void ReluBackwardInPlaceSerial(const float* __restrict y, int64_t count, float* __restrict dy) {
  for (int64_t i = 0; i < count; ++i) dy[i] = y[i] > 0.f ? dy[i] : 0.f;
}

NANONAS_VECTOR_CLONES
void GatherImagesSerial(const uint8_t* images, int64_t image_bytes, const int64_t* indices, int n,
                        float scale, float* out) {
  for (int b = 0; b < n; ++b) {
    const uint8_t* __restrict src = images + indices[b] * image_bytes;
    float* __restrict dst = out + static_cast<int64_t>(b) * image_bytes;
    for (int64_t j = 0; j < image_bytes; ++j) dst[j] = static_cast<float>(src[j]) * scale;
  }
}

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

NANONAS_VECTOR_CLONES
void AccumulateInto(float* __restrict acc, const float* __restrict x, int64_t count) {
  for (int64_t i = 0; i < count; ++i) acc[i] += x[i];
}

void AdamUpdate(float* w, const float* g, float* m, float* v, int64_t count, float lr_t,
                float beta1, float beta2, float epsilon) {
  ParallelChunks(count, 16, kMinParallelFloats, kAnyThreads, [&](int64_t b, int64_t e, int) {
    AdamUpdateSerial(w + b, g + b, m + b, v + b, e - b, lr_t, beta1, beta2, epsilon);
  });
}

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
  ParallelChunks(n, 1, MinImages(image_bytes), kAnyThreads, [&](int64_t b, int64_t e, int) {
    GatherImagesSerial(images, image_bytes, indices + b, static_cast<int>(e - b), scale,
                       out + b * image_bytes);
  });
}

}  // namespace nanonas::engine
