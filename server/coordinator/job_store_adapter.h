// CoordinatorStore over server/store's JobStore (SQLite WAL in production): one WriteBatch per
// commit, so a job's record, its candidates and the event describing the change land together.
#ifndef NANONAS_SERVER_COORDINATOR_JOB_STORE_ADAPTER_H_
#define NANONAS_SERVER_COORDINATOR_JOB_STORE_ADAPTER_H_

#include <memory>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "server/coordinator/interfaces.h"
#include "server/store/job_store.h"

namespace nanonas::coordinator {

class JobStoreAdapter : public CoordinatorStore {
 public:
  // `artifact_root`: where ArtifactStore keeps the files (recorded with each artifact row).
  explicit JobStoreAdapter(std::unique_ptr<JobStore> store, std::string artifact_root = "");

  absl::Status Commit(const nanonas::v1::Job& job, const nanonas::v1::JobEvent* event) override;
  absl::StatusOr<std::vector<nanonas::v1::Job>> LoadJobs() override;
  absl::StatusOr<std::vector<nanonas::v1::JobEvent>> LoadEvents(const std::string& job_id,
                                                                int64_t after_sequence) override;

 private:
  std::unique_ptr<JobStore> store_;
  const std::string artifact_root_;
  absl::Mutex mu_;
  std::set<std::string> known_ ABSL_GUARDED_BY(mu_);  // jobs already created in the store
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_JOB_STORE_ADAPTER_H_
