// A small, fast, portable pseudo-random generator (SplitMix64) for initialisation, shuffling and
// dropout. Portable across standard libraries, unlike std::uniform_*_distribution, so that the same
// seed gives the same run everywhere.
//
// Thread-safety: an Rng is used by one thread at a time; DeriveSeed is pure.
#ifndef NANONAS_WORKER_ENGINE_RNG_H_
#define NANONAS_WORKER_ENGINE_RNG_H_

#include <cstdint>

namespace nanonas::engine {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 24 random bits.
  float Uniform01() { return static_cast<float>(Next() >> 40) * (1.0f / 16777216.0f); }
  // Uniform in [lo, hi).
  float Uniform(float lo, float hi) { return lo + (hi - lo) * Uniform01(); }
  // Uniform integer in [0, n), n >= 1.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

// An independent stream for `purpose` (initialisation, shuffle of epoch e, dropout ...) of a seed.
inline uint64_t DeriveSeed(uint64_t seed, uint64_t purpose) {
  Rng r(seed ^ (0xD1B54A32D192ED03ULL * (purpose + 1)));
  return r.Next();
}

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_RNG_H_
