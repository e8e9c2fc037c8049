#include "server/coordinator/job_store_adapter.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

JobStoreAdapter::JobStoreAdapter(std::unique_ptr<JobStore> store, std::string artifact_root)
    : store_(std::move(store)), artifact_root_(std::move(artifact_root)) {}

absl::Status JobStoreAdapter::Commit(const v1::Job& job, const v1::JobEvent* event) {
  absl::MutexLock lock(&mu_);
  WriteBatch batch;
  v1::Job own = job;
  own.clear_candidates();
  const bool create = known_.count(job.id()) == 0;
  if (create) {
    batch.CreateJob(own);
  } else {
    batch.UpdateJob(own);
  }
  for (const auto& c : job.candidates()) batch.PutCandidate(job.id(), c);
  for (const auto& a : job.artifacts()) {
    ArtifactRecord record;
    record.job_id = job.id();
    record.artifact = a;
    record.path = artifact_root_.empty()
                      ? a.name()
                      : absl::StrCat(artifact_root_, "/", job.id(), "/", a.name());
    batch.PutArtifact(std::move(record));
  }
  if (event != nullptr) batch.AppendEvent(job.id(), *event);
  NANONAS_ASSIGN_OR_RETURN(WriteResult result, store_->Write(batch));
  if (create) known_.insert(job.id());
  if (event != nullptr &&
      (result.events.empty() || result.events.back().sequence() != event->sequence())) {
    return absl::InternalError(
        absl::StrCat("store assigned event sequence ",
                     result.events.empty() ? -1 : result.events.back().sequence(), " to job ",
                     job.id(), ", the coordinator expected ", event->sequence()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Job>> JobStoreAdapter::LoadJobs() {
  NANONAS_ASSIGN_OR_RETURN(StoreSnapshot snap, store_->LoadAll());
  absl::MutexLock lock(&mu_);
  for (const auto& j : snap.jobs) known_.insert(j.id());
  return snap.jobs;
}

absl::StatusOr<std::vector<v1::JobEvent>> JobStoreAdapter::LoadEvents(const std::string& job_id,
                                                                      int64_t after_sequence) {
  return store_->ReadEvents(job_id, after_sequence);
}

}  // namespace nanonas::coordinator
