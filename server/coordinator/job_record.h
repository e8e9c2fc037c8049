// One job's record: the Job message with its state, its candidates' states and its final
// training's state. Every state change goes through one guarded transition function per kind
// (MoveJob, MoveCandidate, MoveFinal), which refuses an illegal move with FAILED_PRECONDITION
// (nothing changed) and returns the event that describes the change, to be persisted. The
// helpers above them (StartAttempt, Requeue, ...) serve one evaluation life cycle for both a
// candidate and the final training. The legal moves:
//   job:       QUEUED -> PREPARING -> RUNNING -> {SUCCEEDED|FAILED|CANCELLED};
//              {QUEUED|PREPARING} -> {CANCELLED|FAILED}
//   candidate: PENDING -> RUNNING -> {DONE|HOST_INFEASIBLE|FAILED|CANCELLED};  RUNNING -> PENDING;
//              PENDING -> CANCELLED
//   final:     UNSPECIFIED -> PENDING -> RUNNING -> {DONE|HOST_INFEASIBLE|FAILED|CANCELLED};
//              RUNNING -> PENDING;  PENDING -> CANCELLED
// A candidate is created PENDING, or in its final state when the search settles it untrained
// (INFEASIBLE, HOST_INFEASIBLE, ...). After a restart a final training that had started goes back
// to PENDING (ResumeFinal).
// The record also remembers the last committed Job (MarkDurable) so that a change the store
// refused can be undone (Rollback).
//
// Not thread-safe: the coordinator holds its lock around every call.
#ifndef NANONAS_SERVER_COORDINATOR_JOB_RECORD_H_
#define NANONAS_SERVER_COORDINATOR_JOB_RECORD_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"
#include "server/search/search.h"

namespace nanonas::coordinator {

// What an evaluation of a job trains: a candidate on its path or its final training.
struct EvalTarget {
  static EvalTarget Candidate(int index) { return EvalTarget{index}; }
  static EvalTarget Final() { return EvalTarget{kFinalIndex}; }
  bool is_final() const { return index == kFinalIndex; }

  static constexpr int kFinalIndex = -2;
  int index = kFinalIndex;  // >= 0: candidate position on the path
};

// The outcome a finished candidate reports to the search.
EvaluationOutcome OutcomeOf(const nanonas::v1::Candidate& c);
// A recorded finished candidate as the search's path entry (for NanoNasSearch::Restore).
PathEntry EntryOf(const nanonas::v1::Candidate& c);

class JobRecord {
 public:
  // `job` is taken as committed.
  explicit JobRecord(nanonas::v1::Job job);

  const nanonas::v1::Job& job() const { return job_; }
  const std::string& id() const { return job_.id(); }
  nanonas::v1::JobState state() const { return job_.state(); }

  // ---- the guarded transitions (each returns the event to persist)
  // Sets the error (when not empty) and the start / finish time.
  absl::StatusOr<nanonas::v1::JobEvent> MoveJob(nanonas::v1::JobState to, const std::string& error,
                                                absl::Time now);
  // `fill` (optional) sets the candidate's other fields along with the move.
  absl::StatusOr<nanonas::v1::JobEvent> MoveCandidate(
      int index, nanonas::v1::CandidateState to,
      const std::function<void(nanonas::v1::Candidate*)>& fill = nullptr);
  absl::StatusOr<nanonas::v1::JobEvent> MoveFinal(
      nanonas::v1::CandidateState to,
      const std::function<void(nanonas::v1::FinalTraining*)>& fill = nullptr);

  // ---- candidates
  // Appends a PENDING candidate (not yet persisted: see CandidateEvent) and returns its index.
  int AddCandidate(const PathEntry& entry);
  // Appends a candidate the search settled without training (its outcome is final).
  absl::StatusOr<nanonas::v1::JobEvent> AddSettledCandidate(const PathEntry& entry);
  // The candidate worker's result: RUNNING -> DONE / HOST_INFEASIBLE / FAILED with its figures.
  absl::StatusOr<nanonas::v1::JobEvent> ApplyCandidateResult(int index,
                                                             const nanonas::v1::EvaluateResult& r,
                                                             const std::string& worker,
                                                             double wall_seconds);
  nanonas::v1::JobEvent CandidateEvent(int index) const;

  // ---- the final training
  absl::StatusOr<nanonas::v1::JobEvent> QueueFinal(int k, int c, int epochs);
  // The worker's result: RUNNING -> DONE, or FAILED / HOST_INFEASIBLE with *problem saying why
  // (also for a model whose size differs from the search's Flash figure).
  absl::StatusOr<nanonas::v1::JobEvent> ApplyFinalResult(const nanonas::v1::EvaluateResult& r,
                                                         const std::string& worker,
                                                         double wall_seconds, std::string* problem);
  // After a restart: a final training that had started trains again (its epochs dropped).
  absl::StatusOr<nanonas::v1::JobEvent> ResumeFinal();
  nanonas::v1::JobEvent FinalEvent() const;

  // ---- one evaluation life cycle, for a candidate or the final training
  nanonas::v1::CandidateState StateOf(EvalTarget t) const;
  int AttemptsOf(EvalTarget t) const;
  // "candidate (k,c)" / "final training (k,c)".
  std::string Describe(EvalTarget t) const;
  // PENDING -> RUNNING on `worker`: one more attempt, the previous attempt's epochs dropped. A
  // final training records the `threads` (worker slots) it trains with.
  absl::StatusOr<nanonas::v1::JobEvent> StartAttempt(EvalTarget t, const std::string& worker,
                                                     int threads = 1);
  // RUNNING -> PENDING (worker lost or busy, restart). `error` (when not empty) replaces the
  // error; `refund` takes the attempt back (the worker never started it).
  absl::StatusOr<nanonas::v1::JobEvent> Requeue(EvalTarget t, const std::string& error,
                                                bool refund);
  // RUNNING -> FAILED after the last attempt.
  absl::StatusOr<nanonas::v1::JobEvent> FailAttempt(EvalTarget t, const std::string& error,
                                                    double seconds);
  // PENDING | RUNNING -> CANCELLED.
  absl::StatusOr<nanonas::v1::JobEvent> Cancel(EvalTarget t, const std::string& reason);
  // A live epoch result (kept in memory, persisted with the next change).
  void AddEpoch(EvalTarget t, const nanonas::v1::EpochResult& epoch);

  // ---- the dataset preparation (PREPARING)
  // The live progress (Job.preparation), kept in memory and persisted with the next change.
  // FAILED_PRECONDITION unless the job is PREPARING.
  absl::Status SetPreparation(const nanonas::v1::Preparation& progress);
  // What the preparation made: the decoded training set (and test set, `test` null when the job
  // has none). FAILED_PRECONDITION unless the job is PREPARING; persisted with the move to RUNNING.
  struct Prepared {
    std::string evaluation_dataset_id;
    std::vector<std::string> class_names;
    int64_t num_images = 0;
    std::string test_evaluation_dataset_id;  // empty: no test set
  };
  absl::Status SetPrepared(const Prepared& prepared);

  // ---- fields that are not states
  void SetResult(const nanonas::v1::SearchResult& result) { *job_.mutable_result() = result; }
  void SetArtifacts(const std::vector<nanonas::v1::Artifact>& artifacts);
  // RUNNING and its final training or last candidate waits for a worker.
  bool WaitsForWorker() const;

  // ---- durability
  void MarkDurable() { durable_ = job_; }
  void Rollback() { job_ = durable_; }

 private:
  nanonas::v1::Job job_;
  nanonas::v1::Job durable_;  // as last committed
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_JOB_RECORD_H_
