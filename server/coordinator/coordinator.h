// The coordinator core: jobs, the search of each job, the worker pool and dispatch. Transport-free
// (no gRPC include): the gRPC layer in server/grpc calls these methods and converts the returned
// absl::Status once. A thin composition, under one lock, of:
//   job_spec.h      spec defaults and validation        feasibility.h  MCU limits, host memory
//   job_record.h    a job's states and their legal moves (one evaluation life cycle for a
//                   candidate and the final training)
//   scheduler.h     which evaluation runs on which worker (a pure, swappable policy)
//   worker_pool.h   registration, heartbeats, expiry, free slots
//   event_log.h     persisted events and live progress for watchers
//   job_artifacts.h the files of a finished job
//   preparer.h      a job's dataset preparation (decode, validate, pack) off the lock
//   job_state.h     proto time; terminal states and violation texts come from common/api
// coordinator.cc holds the client, worker and recovery API; coordinator_preparation.cc a job's
// dataset preparation; coordinator_evaluations.cc the evaluation life cycle (dispatch, start,
// progress, result, retry, loss).
//
// SubmitJob answers at once: it validates the spec, checks that the datasets exist (DatasetLookup),
// makes the job durable in QUEUED and starts its preparation (DatasetPreparer). The job then moves
// QUEUED -> PREPARING (when the preparation begins; Job.preparation and live
// JobEvent.preparation events, at most ~4 a second plus the last, show its progress) -> RUNNING
// (the datasets are decoded and the search is created), or FAILED with the preparation's error
// (which names the file at fault). Submitting is idempotent by SubmitJobRequest.request_id (kept
// in Job.request_id, so also across a restart).
//
// A RUNNING job first searches, then (when the search found a model and the spec does not skip
// it) trains the winner longer on a worker, which also quantizes and exports it. Artifacts
// (model.tflite, model.h, report.json, search-path.svg) are written when the job succeeds.
//
// Each running job has one candidate on its path on the way at a time (the one its search asks for
// next); all jobs share the registered workers (the policy decides; oldest job first today). Idle
// slots may run speculative evaluations of the likely next candidates
// (CoordinatorOptions::speculate), kept in memory until the search asks for them. Every change of a
// job is written to the store before it is visible, so Recover() after a crash replays the recorded
// path into a fresh search and goes on without running any finished evaluation again.
//
// Store failures: a change the store refuses is not applied in memory (the job record rolls back
// to its last commit); the job then ends FAILED with the store's error (recorded in memory, and in
// the store if it accepts that write), and the operation that caused it returns the error
// (SubmitJob, CancelJob, Recover; from a worker's callback it is logged).
//
// No hidden threads: the owner calls Tick() periodically (expires silent workers, dispatches);
// evaluation callbacks arrive on the connector's threads, preparation callbacks on the preparer's.
// Thread-safe.
#ifndef NANONAS_SERVER_COORDINATOR_COORDINATOR_H_
#define NANONAS_SERVER_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"
#include "server/coordinator/artifact_store.h"
#include "server/coordinator/dataset_registry.h"
#include "server/coordinator/event_log.h"
#include "server/coordinator/feasibility.h"
#include "server/coordinator/interfaces.h"
#include "server/coordinator/job_record.h"
#include "server/coordinator/job_spec.h"
#include "server/coordinator/metrics.h"
#include "server/coordinator/preparer.h"
#include "server/coordinator/scheduler.h"
#include "server/coordinator/worker_pool.h"
#include "server/search/search.h"

namespace nanonas::coordinator {

struct CoordinatorOptions {
  absl::Duration worker_timeout = absl::Milliseconds(3000);  // silent this long: worker lost
  int max_attempts = 3;              // dispatches of one candidate before it is FAILED
  int heartbeat_interval_ms = 1000;  // told to workers at registration
  size_t progress_buffer = 256;      // live progress events kept per job
  // Idle worker slots evaluate the candidates a job's search will probably ask for next
  // ((k, c + 1) and (k + 1, 0)); results still reach the search in path order, so the outcome
  // equals the sequential search's. Speculative work yields its slot to any queued candidate.
  bool speculate = true;
  std::function<absl::Time()> clock;  // default absl::Now
};

struct CoordinatorDeps {
  CoordinatorStore* store = nullptr;         // required
  WorkerConnector* connector = nullptr;      // required
  DatasetLookup lookup;                      // required: DatasetRegistry::Get in production
  DatasetPreparer* preparer = nullptr;       // required: outlives the core's callbacks
  ResourceModel resource_model;              // required
  HostMemoryModel host_memory_model;         // optional: no host check without it
  CoordinatorMetrics* metrics = nullptr;     // optional
  ArtifactStore* artifacts = nullptr;        // optional: without it no artifact files are kept
  const SchedulingPolicy* policy = nullptr;  // optional: OldestJobFirstPolicy without it
};

// A worker and what runs on it now (ListWorkers; read-only copies).
struct WorkerStatus {
  struct Work {
    std::string job_id;
    int k = 0, c = 0;
    bool final_training = false;
    bool speculative = false;  // ahead of the search (not on the path yet)
    absl::Time started;
  };
  WorkerView worker;
  std::vector<Work> evaluations;  // oldest first
};

// NormalizeSpec (job_spec.h) and FindViolations (feasibility.h) are part of this API.

class Coordinator {
 public:
  Coordinator(CoordinatorOptions options, CoordinatorDeps deps);
  // Cancels running evaluations and waits for their callbacks.
  ~Coordinator();

  // Stops dispatching, cancels running evaluations and preparations and ignores their results from
  // now on (the store keeps them RUNNING / PREPARING, as after a crash; Recover() in the next
  // process re-queues them). Does not wait; the destructor waits (bounded) for the connector's and
  // the preparer's callbacks: destroy a ThreadPreparer after Shutdown() and before the core.
  void Shutdown();

  // Loads every job from the store and resumes the unfinished ones (a QUEUED or PREPARING job
  // prepares its datasets again; the registry reuses what it packed). Call once, before serving.
  absl::Status Recover();

  // ---- clients
  // Validates the spec, the request id (<= 128 printable ASCII characters; empty: not idempotent)
  // and that the datasets exist (NOT_FOUND) with >= 2 classes, matching test classes and enough
  // calibration images (INVALID_ARGUMENT); makes the job durable in QUEUED, starts its
  // preparation and returns the QUEUED job without waiting for it. A request id seen before
  // returns the job it made (FAILED_PRECONDITION when the spec differs).
  absl::StatusOr<nanonas::v1::Job> SubmitJob(const nanonas::v1::JobSpec& spec,
                                             const std::string& request_id = "");
  absl::StatusOr<nanonas::v1::Job> GetJob(const std::string& job_id);
  // Newest first; `states` empty = all; limit 0 = all.
  absl::StatusOr<std::vector<nanonas::v1::Job>> ListJobs(
      const std::vector<nanonas::v1::JobState>& states, int limit);
  // Stops the job's training on the workers and marks it CANCELLED. FAILED_PRECONDITION if the job
  // has already ended.
  absl::StatusOr<nanonas::v1::Job> CancelJob(const std::string& job_id);

  using WatchCursor = coordinator::WatchCursor;  // event_log.h
  // The next events for a watcher: first a snapshot of the job (sequence = the cursor, or the
  // latest event for a watch from the beginning), then persisted events after the cursor and live
  // progress events, waiting up to `wait` for something new. *ended: the job has ended and every
  // event has been delivered. NOT_FOUND for an unknown job.
  absl::StatusOr<std::vector<nanonas::v1::JobEvent>> NextEvents(const std::string& job_id,
                                                                WatchCursor* cursor,
                                                                absl::Duration wait, bool* ended);

  // ---- artifacts (NOT_FOUND for an unknown job or artifact name)
  absl::StatusOr<std::vector<nanonas::v1::Artifact>> ListArtifacts(const std::string& job_id);
  // Up to `length` bytes of the artifact from `offset` (empty at the end).
  absl::StatusOr<std::string> ReadArtifact(const std::string& job_id, const std::string& name,
                                           int64_t offset, int64_t length);

  // ---- workers
  absl::StatusOr<nanonas::v1::RegisterWorkerResponse> RegisterWorker(
      const nanonas::v1::WorkerDescription& worker);
  nanonas::v1::HeartbeatResponse Heartbeat(const nanonas::v1::HeartbeatRequest& request);
  absl::Status LeaveWorker(const std::string& worker_id);

  // Expires workers silent for longer than worker_timeout (their evaluations go back to the
  // queue) and dispatches queued candidates to free worker slots. Call every few hundred ms.
  void Tick();

  // ---- introspection (tests, metrics, the web view)
  // Every registered worker with its evaluations, in id order.
  std::vector<WorkerStatus> ListWorkers() const;
  // The coordinator's clock (CoordinatorOptions::clock).
  absl::Time CurrentTime() const { return Now(); }
  int NumWorkers() const;
  int QueueDepth() const;
  int RunningEvaluations() const;

 private:
  struct JobRuntime {
    JobRuntime(nanonas::v1::Job job, size_t progress_capacity)
        : record(std::move(job)), log(progress_capacity) {}
    JobRecord record;
    EventLog log;
    std::unique_ptr<NanoNasSearch> search;
    FeasibilityFunction feasible;
    struct SpeculativeResult {
      nanonas::v1::EvaluateResult result;
      std::string worker;
      double seconds = 0;
    };
    std::map<std::pair<int, int>, SpeculativeResult> speculative;  // (k, c) -> finished ahead
    std::map<std::pair<int, int>, bool> fits;  // (k, c) -> would be trained (cached verdicts)
    uint64_t preparation = 0;                  // the preparation on the way (0: none)
    absl::Time last_preparation_event = absl::InfinitePast();  // live event throttle
  };
  // A preparation started and not done yet (its `done` has not run).
  struct PreparationEntry {
    std::string job_id;
    std::unique_ptr<PreparationHandle> handle;  // null until Start returned
    bool cancelled = false;                     // its result is dropped
  };
  struct EvalEntry {
    std::string job_id;
    bool speculative = false;  // not asked for yet; `target` is meaningless until adopted
    EvalTarget target;
    int k = 0, c = 0;
    std::string worker_id;
    absl::Time started;
    int threads = 1;  // worker slots it takes
  };

  absl::Time Now() const;
  JobRuntime* FindJob(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  JobRuntime& AddRuntime(nanonas::v1::Job job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- submission and the dataset preparation (coordinator_preparation.cc)
  // The fast checks of SubmitJob against the registry's DatasetInfo (no decoding).
  absl::Status CheckDatasets(const nanonas::v1::JobSpec& spec) const;
  // The job a request id already made (nullopt: new or empty id); FAILED_PRECONDITION when its
  // spec differs from `spec`.
  absl::StatusOr<std::optional<nanonas::v1::Job>> FindRequest(const std::string& request_id,
                                                              const nanonas::v1::JobSpec& spec)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Registers a preparation of the job (QUEUED or PREPARING); returns the request to Start.
  PreparationRequest NewPreparation(JobRuntime& rt, uint64_t* id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls the preparer (without the lock: it may call back at once) and keeps the handle.
  void StartPreparation(uint64_t id, const PreparationRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the job's preparation on the way, if any.
  void CancelPreparation(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnPreparationProgress(uint64_t id, const nanonas::v1::Preparation& progress);
  void OnPreparationDone(uint64_t id, absl::StatusOr<PreparationResult> result);
  // PREPARING -> RUNNING with the prepared datasets and a new search (FAILED on an error).
  absl::Status FinishPreparation(JobRuntime& rt, absl::StatusOr<PreparationResult> result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The checks and the search once the datasets are decoded.
  absl::Status CheckPrepared(JobRuntime& rt, const PreparationResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- persistence (coordinator.cc)
  // Stamps and commits `event` with the job. On success the record is durable and the event is
  // in the log; on failure the record rolls back (unless `keep_on_failure`) and the store's
  // error comes back naming the job.
  absl::Status Commit(JobRuntime& rt, nanonas::v1::JobEvent event, bool keep_on_failure = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits the event of a transition, or returns the transition's refusal.
  absl::Status Apply(JobRuntime& rt, absl::StatusOr<nanonas::v1::JobEvent> event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status MoveJob(JobRuntime& rt, nanonas::v1::JobState to, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An operation on the job failed with `st` (store error or refused move): stop its
  // evaluations and end it FAILED with the reason. No-op for an ended job or an OK status.
  void Abort(JobRuntime& rt, const absl::Status& st) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- the search of a job (coordinator.cc)
  // Advances the job's search until a candidate waits for a worker or the search ends.
  absl::Status StepJob(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the candidates the search settled by itself (infeasible, host-infeasible, ...).
  absl::Status RecordSettled(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts the search's next candidate on the path: adopts a result or an evaluation from ahead of
  // time, else queues it. *again: step once more (a result was adopted).
  absl::Status QueueNext(JobRuntime& rt, const PathEntry& next, bool* again)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FinishSearch(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes the artifacts and ends the job SUCCEEDED (FAILED when the files cannot be written).
  absl::Status EndJob(JobRuntime& rt, const std::string& tflite) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecoverJob(JobRuntime& rt, bool* resumed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- the evaluation life cycle (coordinator_evaluations.cc)
  // Persists the event of `t` reaching its final state, then: a candidate is counted and reported
  // to the search (the caller steps the job); a final training ends the job (SUCCEEDED with
  // `tflite`, FAILED with `job_error`).
  absl::Status Settle(JobRuntime& rt, EvalTarget t, absl::StatusOr<nanonas::v1::JobEvent> event,
                      const std::string& tflite, const std::string& job_error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A worker's result for candidate `index`: fill it in and settle it.
  absl::Status FinishCandidate(JobRuntime& rt, int index, const nanonas::v1::EvaluateResult& r,
                               const std::string& worker, double wall_seconds)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Dispatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SchedulingSnapshot Snapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Would (k, c) of the job be trained (the same feasibility the search applies)? Cached.
  bool WouldTrain(JobRuntime& rt, int k, int c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the work on the worker and records it (a candidate or final training goes RUNNING).
  absl::Status Launch(JobRuntime& rt, const WorkItem& work, const std::string& worker_id,
                      int threads) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels speculative evaluations of the job the search can no longer ask for.
  void PruneSpeculation(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The evaluation ended without a result (worker lost, RPC error): retry or fail its target.
  absl::Status RetryOrFail(const std::string& eval_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker said it is busy: not a failed attempt; queue the target again.
  absl::Status Requeue(const std::string& eval_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A result for the evaluation.
  absl::Status ApplyResult(const std::string& eval_id, const nanonas::v1::EvaluateResult& r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropWorker(const std::string& worker_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets the evaluation (cancelling it on the worker) and frees its slot.
  void CancelEvaluation(const std::string& eval_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelEvaluationsOf(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `st` through Abort for the evaluation's job (callback paths have no caller to tell).
  void AbortJobOf(const std::string& job_id, const absl::Status& st)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnEvaluationEvent(const std::string& eval_id, const nanonas::v1::EvaluateEvent& event);
  void OnEvaluationDone(const std::string& eval_id,
                        absl::StatusOr<nanonas::v1::EvaluateResult> result);
  void UpdateMetrics() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CoordinatorOptions options_;
  const CoordinatorDeps deps_;
  const OldestJobFirstPolicy default_policy_;
  const SchedulingPolicy* const policy_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;                                    // any event; watchers wait on it
  std::vector<std::string> job_order_ ABSL_GUARDED_BY(mu_);  // creation order
  std::map<std::string, JobRuntime> jobs_ ABSL_GUARDED_BY(mu_);
  WorkerPool workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, EvalEntry> evals_ ABSL_GUARDED_BY(mu_);  // live dispatches
  // Connector handles until their on_done has run (outlive evals_ entries after a loss/cancel).
  std::map<std::string, std::unique_ptr<RunningEvaluation>> handles_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, PreparationEntry> preparations_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> requests_ ABSL_GUARDED_BY(mu_);  // request id -> job id
  uint64_t preparation_counter_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t progress_counter_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t eval_counter_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_COORDINATOR_H_
