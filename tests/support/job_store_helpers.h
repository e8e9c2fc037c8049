// One-operation writes and single-job lookups over the JobStore interface, for tests. Production
// writes whole batches (JobStoreAdapter) and reads only LoadAll and ReadEvents, so these live
// here, built on exactly those calls. Thread-safe as the store is.
#ifndef NANONAS_TESTS_SUPPORT_JOB_STORE_HELPERS_H_
#define NANONAS_TESTS_SUPPORT_JOB_STORE_HELPERS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "server/store/job_store.h"

namespace nanonas {

inline absl::Status CreateJob(JobStore& store, const v1::Job& job) {
  WriteBatch b;
  b.CreateJob(job);
  return store.Write(b).status();
}

inline absl::Status UpdateJob(JobStore& store, const v1::Job& job) {
  WriteBatch b;
  b.UpdateJob(job);
  return store.Write(b).status();
}

inline absl::Status PutCandidate(JobStore& store, const std::string& job_id,
                                 const v1::Candidate& candidate) {
  WriteBatch b;
  b.PutCandidate(job_id, candidate);
  return store.Write(b).status();
}

// Returns the assigned sequence.
inline absl::StatusOr<int64_t> AppendEvent(JobStore& store, const std::string& job_id,
                                           const v1::JobEvent& event) {
  WriteBatch b;
  b.AppendEvent(job_id, event);
  absl::StatusOr<WriteResult> r = store.Write(b);
  if (!r.ok()) return r.status();
  return r->events.at(0).sequence();
}

inline absl::Status PutArtifact(JobStore& store, const ArtifactRecord& artifact) {
  WriteBatch b;
  b.PutArtifact(artifact);
  return store.Write(b).status();
}

// The job with its candidates and artifacts (from LoadAll). NOT_FOUND for an unknown id.
inline absl::StatusOr<v1::Job> GetJob(JobStore& store, const std::string& job_id) {
  absl::StatusOr<StoreSnapshot> snap = store.LoadAll();
  if (!snap.ok()) return snap.status();
  for (const v1::Job& job : snap->jobs) {
    if (job.id() == job_id) return job;
  }
  return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
}

// The last assigned event sequence (0: none yet). NOT_FOUND for an unknown job.
inline absl::StatusOr<int64_t> LastEventSequence(JobStore& store, const std::string& job_id) {
  absl::StatusOr<std::vector<v1::JobEvent>> events = store.ReadEvents(job_id, 0);
  if (!events.ok()) return events.status();
  return events->empty() ? int64_t{0} : events->back().sequence();
}

}  // namespace nanonas

#endif  // NANONAS_TESTS_SUPPORT_JOB_STORE_HELPERS_H_
