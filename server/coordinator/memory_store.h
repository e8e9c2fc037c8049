// CoordinatorStore in memory: for tests, and to simulate a restart (a second Coordinator over the
// same MemoryStore sees exactly what the first one persisted). Thread-safe.
#ifndef NANONAS_SERVER_COORDINATOR_MEMORY_STORE_H_
#define NANONAS_SERVER_COORDINATOR_MEMORY_STORE_H_

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

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_MEMORY_STORE_H_
