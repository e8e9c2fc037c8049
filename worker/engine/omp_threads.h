// Sets the calling thread's OpenMP thread count for one scope: oneDNN reads it when it creates a
// primitive, the kernels and the Network when they split work.
//
// Thread-safety: changes only the calling thread's OpenMP setting (a per-thread value); use it
// on one thread, as a scoped local.
#ifndef NANONAS_WORKER_ENGINE_OMP_THREADS_H_
#define NANONAS_WORKER_ENGINE_OMP_THREADS_H_

#include <omp.h>

namespace nanonas::engine {

class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ScopedOmpThreads() { omp_set_num_threads(saved_); }
  ScopedOmpThreads(const ScopedOmpThreads&) = delete;
  ScopedOmpThreads& operator=(const ScopedOmpThreads&) = delete;

 private:
  int saved_;
};

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_OMP_THREADS_H_
