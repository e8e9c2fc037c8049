// Internal to the hand-written kernels (kernels_*.cc), not part of the engine's interface: how a
// large loop is split over the OpenMP threads, and the attribute that compiles a hot loop for
// several vector widths.
//
// Contract: ParallelChunks calls f on contiguous chunks that together cover [0, count) exactly
// once; the chunks depend only on the thread count, so results are reproducible for a given
// thread count. Thread-safety: f runs concurrently on disjoint chunks (see kernels.h).
#ifndef NANONAS_WORKER_ENGINE_KERNELS_INTERNAL_H_
#define NANONAS_WORKER_ENGINE_KERNELS_INTERNAL_H_

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <numeric>

// Hot loops are compiled for AVX-512 and AVX2 too and picked at load time by CPU features, so the
// binary stays portable (Debian's baseline is x86-64) while using the host's vector units. (Not
// "arch=..." clones: those dispatch on the CPU model and fall back to SSE2 on AMD processors.)
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define NANONAS_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define NANONAS_VECTOR_CLONES
#endif

namespace nanonas::engine::kernels_internal {

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
  // Inside a parallel region (a batch part of a Network, network.h) a nested region would get
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
inline constexpr int kAnyThreads = 1 << 20;
inline constexpr int64_t kMinParallelFloats = 1 << 15;
// The fewest images worth splitting over threads for images of `per_image` floats.
inline int64_t MinImages(int64_t per_image) {
  return std::max<int64_t>(2, kMinParallelFloats / std::max<int64_t>(per_image, 1));
}

// The period P of a per-channel pattern over a flat NHWC tensor of c channels: the smallest
// multiple of both c and 16, so that a loop over P lanes vectorises whatever c is.
inline int ChannelPeriod(int c) { return c / std::gcd(c, 16) * 16; }

}  // namespace nanonas::engine::kernels_internal

#endif  // NANONAS_WORKER_ENGINE_KERNELS_INTERNAL_H_
