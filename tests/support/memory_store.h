// CoordinatorStore in memory, for tests: MemoryStore simulates a restart (a second Coordinator
// over the same MemoryStore sees exactly what the first one persisted); FailingStore refuses
// commits on demand, like a full disk. Thread-safe.
#ifndef NANONAS_TESTS_SUPPORT_MEMORY_STORE_H_
#define NANONAS_TESTS_SUPPORT_MEMORY_STORE_H_

#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/coordinator/interfaces.h"

namespace nanonas::coordinator {

class MemoryStore : public CoordinatorStore {
 public:
  absl::Status Commit(const nanonas::v1::Job& job, const nanonas::v1::JobEvent* event) override;
  absl::StatusOr<std::vector<nanonas::v1::Job>> LoadJobs() override;
  absl::StatusOr<std::vector<nanonas::v1::JobEvent>> LoadEvents(const std::string& job_id,
                                                                int64_t after_sequence) override;

 private:
  absl::Mutex mu_;
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> jobs_ ABSL_GUARDED_BY(mu_);  // serialized, like a database
  std::map<std::string, std::vector<std::string>> events_ ABSL_GUARDED_BY(mu_);
};

// A MemoryStore whose commits fail with UNAVAILABLE "disk full (test)" once FailAfter(n) has let
// n more commits through (FailAfter(0): from now on); Heal() lets every commit through again.
class FailingStore : public MemoryStore {
 public:
  absl::Status Commit(const nanonas::v1::Job& job, const nanonas::v1::JobEvent* event) override {
    const int left = commits_left_.load();
    if (left == 0) return absl::UnavailableError("disk full (test)");
    if (left > 0) commits_left_.fetch_sub(1);
    return MemoryStore::Commit(job, event);
  }
  void FailAfter(int n) { commits_left_ = n; }
  void Heal() { commits_left_ = -1; }

 private:
  std::atomic<int> commits_left_{-1};  // -1: no failure planned
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_TESTS_SUPPORT_MEMORY_STORE_H_
