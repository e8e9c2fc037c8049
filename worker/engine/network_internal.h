// Internal to the Network implementation (network*.cc), not part of the engine's interface: the
// team of threads that runs one pass, RunTeam, and the status of a failed oneDNN call.
//
// Thread-safety: a Team is the view of one thread of a pass's OpenMP team; Each and One are
// called by every thread of the team in the same order (One contains barriers).
#ifndef NANONAS_WORKER_ENGINE_NETWORK_INTERNAL_H_
#define NANONAS_WORKER_ENGINE_NETWORK_INTERNAL_H_

#include <omp.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "dnnl.hpp"
#include "worker/engine/network.h"

namespace nanonas::engine {

// INTERNAL "oneDNN <what>: <error>".
inline absl::Status NetworkDnnlError(const char* what, const dnnl::error& e) {
  return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", e.what()));
}

// The threads of one pass: thread `thread` of `size` runs parts thread, thread + size, ... of
// the batch (the same parts in every operation, so a part's data stays in one core's cache).
// Each(f): f(part) for the caller's parts. One(f): f() on thread 0 between barriers, for the
// steps that need the whole batch. Outside a parallel region (one part) both simply call f.
struct Network::Team {
  int thread = 0, size = 1, parts = 1;
  template <typename F>
  void Each(F&& f) const {
    for (int p = thread; p < parts; p += size) f(p);
  }
  template <typename F>
  void One(F&& f) const {
    Barrier();
    if (thread == 0) f();
    Barrier();
  }
  void Barrier() const {
    if (size > 1) {
#pragma omp barrier
    }
  }
};

template <typename F>
absl::Status Network::RunTeam(const Plan& plan, const char* what, F&& body) {
  team_error_.clear();
  const int parts = plan.parts();
  if (parts == 1) {
    body(Team{0, 1, 1});
  } else {
#pragma omp parallel num_threads(parts)
    {
      // The runtime may give fewer threads than asked: each thread then runs several parts.
      body(Team{omp_get_thread_num(), omp_get_num_threads(), parts});
    }
  }
  if (!team_error_.empty()) {
    return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", team_error_));
  }
  return absl::OkStatus();
}

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_NETWORK_INTERNAL_H_
