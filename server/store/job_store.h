// Job persistence behind an interface (leveldb Env style): a SQLite implementation for the
// coordinator (sqlite_job_store.h); tests/support holds an in-memory one. Records are the
// nanonas.v1 proto messages. The interface is what the coordinator uses (JobStoreAdapter): whole
// batches written atomically, everything loaded at startup, events read from a cursor.
//
// What is stored:
//   jobs       the Job message's own fields (its `candidates` and `artifacts` live in their own
//              rows and are ignored by CreateJob/UpdateJob; GetJob/ListJobs/LoadAll fill them in)
//   candidates one row per (job id, Candidate.sequence), upserted
//   events     JobEvents per job with store-assigned sequence numbers 1, 2, 3, ... (the WatchJob
//              resume cursor); progress events are live-only and rejected
//   artifacts  rows (job id, name, path, size, sha256), upserted by (job id, name)
//
// All writes go through Write(WriteBatch): every operation of a batch is applied, in order, or
// none is (one transaction).
//
// Thread-safe: every method may be called from any thread.
#ifndef NANONAS_SERVER_STORE_JOB_STORE_H_
#define NANONAS_SERVER_STORE_JOB_STORE_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

struct ArtifactRecord {
  std::string job_id;
  v1::Artifact artifact;  // artifact.name is the key within the job
  std::string path;       // where the coordinator keeps the file
};

// A set of writes applied atomically by JobStore::Write, in the order they were added.
class WriteBatch {
 public:
  // ALREADY_EXISTS if the id exists; INVALID_ARGUMENT for an empty id.
  void CreateJob(v1::Job job);
  // Replaces the job's own fields. NOT_FOUND for an unknown id.
  void UpdateJob(v1::Job job);
  // Inserts or replaces the candidate (job id, candidate.sequence). NOT_FOUND for an unknown job.
  void PutCandidate(std::string job_id, v1::Candidate candidate);
  // Appends the event with the job's next sequence number (the event's own sequence is
  // ignored). INVALID_ARGUMENT for a progress event or an event without a kind.
  void AppendEvent(std::string job_id, v1::JobEvent event);
  // Inserts or replaces the artifact row (by job id, artifact.name). NOT_FOUND for an unknown job.
  void PutArtifact(ArtifactRecord artifact);

  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  void Clear() { ops_.clear(); }

  struct CreateJobOp {
    v1::Job job;
  };
  struct UpdateJobOp {
    v1::Job job;
  };
  struct PutCandidateOp {
    std::string job_id;
    v1::Candidate candidate;
  };
  struct AppendEventOp {
    std::string job_id;
    v1::JobEvent event;
  };
  struct PutArtifactOp {
    ArtifactRecord artifact;
  };
  using Op = std::variant<CreateJobOp, UpdateJobOp, PutCandidateOp, AppendEventOp, PutArtifactOp>;
  const std::vector<Op>& ops() const { return ops_; }

 private:
  std::vector<Op> ops_;
};

// Checks what can be checked without the stored data (ids present, event kind).
// INVALID_ARGUMENT naming the operation. Both implementations call it first.
absl::Status ValidateBatch(const WriteBatch& batch);

struct WriteResult {
  std::vector<v1::JobEvent> events;  // the appended events, with their assigned sequence
};

// Everything the coordinator needs at startup.
struct StoreSnapshot {
  std::vector<v1::Job> jobs;  // creation order, with candidates (by sequence) and artifacts
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  // Applies the batch atomically. Errors: see WriteBatch; storage errors name the file.
  virtual absl::StatusOr<WriteResult> Write(const WriteBatch& batch) = 0;

  // Events with sequence > after_sequence, in order, at most `limit` (0: all). NOT_FOUND for an
  // unknown job.
  virtual absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                               int64_t after_sequence,
                                                               int limit = 0) = 0;
  // Every job, for the coordinator's startup.
  virtual absl::StatusOr<StoreSnapshot> LoadAll() = 0;
};

}  // namespace nanonas

#endif  // NANONAS_SERVER_STORE_JOB_STORE_H_
