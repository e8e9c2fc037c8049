// The coordinator core: jobs, the search of each job, the worker pool and dispatch. Transport-free
// (no gRPC include): the gRPC layer in server/grpc calls these methods and converts the returned
// absl::Status once.
//
// Job states:        QUEUED -> RUNNING -> {SUCCEEDED | FAILED | CANCELLED};  QUEUED -> CANCELLED
// A RUNNING job first searches, then (when the search found a model and the spec does not skip
// it) trains the winner longer on a worker, which also quantizes and exports it:
// Job.final_training.state PENDING -> RUNNING -> {DONE | FAILED | HOST_INFEASIBLE | CANCELLED},
// RUNNING -> PENDING (worker lost, attempts left; also after a coordinator restart). Artifacts
// (model.tflite, model.h, report.json, search-path.svg) are written when the job succeeds.
// Candidate states:  PENDING -> RUNNING -> {DONE | HOST_INFEASIBLE | FAILED | CANCELLED}
//                    RUNNING -> PENDING (worker lost, attempts left); created INFEASIBLE /
//                    HOST_INFEASIBLE directly when the models say it cannot fit (never trained).
//
// Each running job has one candidate on its path on the way at a time (the one its search asks for
// next); all jobs share the registered workers, oldest job first. Idle slots may run speculative
// evaluations of the likely next candidates (CoordinatorOptions::speculate), kept in memory until
// the search asks for them. Every change of a job is written to the
// store before it is visible, so Recover() after a crash replays the recorded path into a fresh
// search and goes on without running any finished evaluation again.
//
// No hidden threads: the owner calls Tick() periodically (expires silent workers, dispatches);
// evaluation callbacks arrive on the connector's threads. Thread-safe.
#ifndef NANONAS_SERVER_COORDINATOR_COORDINATOR_H_
#define NANONAS_SERVER_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"
#include "server/coordinator/artifact_store.h"
#include "server/coordinator/dataset_registry.h"
#include "server/coordinator/interfaces.h"
#include "server/coordinator/metrics.h"
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
  std::function<absl::Time()> clock; // default absl::Now
};

// Decodes dataset `id` at an input shape (DatasetRegistry::Decode in production).
using DatasetDecoder =
    std::function<absl::StatusOr<DecodedDataset>(const std::string& id, const InputShape& input)>;

struct CoordinatorDeps {
  CoordinatorStore* store = nullptr;       // required
  WorkerConnector* connector = nullptr;    // required
  DatasetDecoder decode;                   // required
  ResourceModel resource_model;            // required
  HostMemoryModel host_memory_model;       // optional: no host check without it
  CoordinatorMetrics* metrics = nullptr;   // optional
  ArtifactStore* artifacts = nullptr;      // optional: without it no artifact files are kept
};

// Fills the defaults of a spec (epochs 3, lr 1e-3, batch 16, seed 1, split 0.3, variant "2023",
// colour mode from channels; final training 100 epochs, Adam 0.01, batch 128) and checks it. INVALID_ARGUMENT says which field and how to fix it.
absl::StatusOr<nanonas::v1::JobSpec> NormalizeSpec(const nanonas::v1::JobSpec& spec);

// The MCU limits a candidate breaks (empty when it fits).
std::vector<nanonas::v1::Violation> FindViolations(const nanonas::v1::Constraints& limits,
                                                   const McuFigures& figures);

class Coordinator {
 public:
  Coordinator(CoordinatorOptions options, CoordinatorDeps deps);
  // Cancels running evaluations and waits for their callbacks.
  ~Coordinator();

  // Stops dispatching, cancels running evaluations and ignores their results from now on (the
  // store keeps them RUNNING, as after a crash; Recover() in the next process re-queues them).
  // Does not wait; the destructor waits for the connector's callbacks.
  void Shutdown();

  // Loads every job from the store and resumes the unfinished ones. Call once, before serving.
  absl::Status Recover();

  // ---- clients
  absl::StatusOr<nanonas::v1::Job> SubmitJob(const nanonas::v1::JobSpec& spec);
  absl::StatusOr<nanonas::v1::Job> GetJob(const std::string& job_id);
  // Newest first; `states` empty = all; limit 0 = all.
  absl::StatusOr<std::vector<nanonas::v1::Job>> ListJobs(
      const std::vector<nanonas::v1::JobState>& states, int limit);
  // Stops the job's training on the workers and marks it CANCELLED. FAILED_PRECONDITION if the job
  // has already ended.
  absl::StatusOr<nanonas::v1::Job> CancelJob(const std::string& job_id);

  // A watcher's position. Start with after_sequence from the request.
  struct WatchCursor {
    int64_t sequence = 0;   // last persisted event delivered
    uint64_t progress = 0;  // last live progress event delivered
    bool started = false;   // the snapshot was sent
  };
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

  // ---- introspection (tests, metrics)
  int NumWorkers() const;
  int QueueDepth() const;
  int RunningEvaluations() const;

 private:
  struct JobRuntime {
    nanonas::v1::Job job;
    std::unique_ptr<NanoNasSearch> search;
    std::vector<nanonas::v1::JobEvent> events;  // persisted, in order
    int64_t last_sequence = 0;
    std::deque<std::pair<uint64_t, nanonas::v1::JobEvent>> progress;  // live only
    struct SpeculativeResult {
      nanonas::v1::EvaluateResult result;
      std::string worker;
      double seconds = 0;
    };
    std::map<std::pair<int, int>, SpeculativeResult> speculative;  // (k, c) -> finished ahead
  };
  struct WorkerEntry {
    nanonas::v1::WorkerDescription desc;
    absl::Time last_seen;
    int running = 0;  // evaluations dispatched here and not finished
    absl::Time busy_until = absl::InfinitePast();  // said "all slots busy": skip until then
    uint64_t last_dispatch = 0;  // eval_counter_ at the last evaluation sent here (0: none yet)
  };
  struct EvalEntry {
    std::string job_id;
    int index = -1;  // candidate position on the job's path; -1: speculative, not asked for yet
    int k = 0, c = 0;
    std::string worker_id;
    absl::Time started;
    bool final = false;  // the job's final training (index -1, never speculative)
  };

  absl::Time Now() const;
  JobRuntime* FindJob(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status TransitionJob(JobRuntime& rt, nanonas::v1::JobState to, const std::string& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Persists the job and appends an event (sequence and time set here).
  void Persist(JobRuntime& rt, nanonas::v1::JobEvent* event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitCandidate(JobRuntime& rt, int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Advances the job's search until a candidate waits for a worker or the search ends.
  void StepJob(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A trained candidate reached a final state: count it, emit it, feed the search, step.
  void FinishCandidate(JobRuntime& rt, int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishSearch(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Persists the final training's record with a FinalTraining event.
  void EmitFinal(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartFinal(JobRuntime& rt, WorkerEntry* worker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker's result of the final training: record it, write the artifacts, end the job.
  void ApplyFinal(JobRuntime& rt, const nanonas::v1::EvaluateResult& r, const std::string& worker,
                  double wall_seconds) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes model.tflite and model.h (when `tflite` is not empty), report.json and search-path.svg
  // of the job as it ends in state `end`, and lists them in the job.
  absl::Status WriteArtifacts(JobRuntime& rt, const std::string& tflite, nanonas::v1::JobState end)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends a job whose search (and final training, if any) is over: artifacts, then `to`.
  void EndJob(JobRuntime& rt, const std::string& tflite) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The search's feasibility function for a job: MCU limits, then the host memory estimate.
  FeasibilityFunction MakeFeasibility(const nanonas::v1::Job& job) const;
  NanoNasSearch::Options SearchOptions(const nanonas::v1::Job& job) const;
  void Dispatch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The worker with the most free slots, or null; among equals the one that was sent work
  // longest ago (a worker that just joined first), so load spreads over the pool.
  WorkerEntry* FreeWorker() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels one speculative evaluation and returns its (now free) worker, or null.
  WorkerEntry* PreemptSpeculation() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The request every evaluation of the job shares (dataset, input, (k, c), settings, budget).
  nanonas::v1::EvaluateRequest NewRequest(const JobRuntime& rt, const std::string& eval_id, int k,
                                          int c) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends `req` to `worker` and records it in evals_ (`entry` gives index and final; the rest
  // comes from the request and the worker).
  void StartOnWorker(WorkerEntry* worker, const nanonas::v1::EvaluateRequest& req, EvalEntry entry)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts (k, c) of the job on `worker`; index >= 0 for the candidate on the path.
  void StartEvaluation(JobRuntime& rt, int k, int c, int index, WorkerEntry* worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cancels speculative evaluations of the job the search can no longer ask for.
  void PruneSpeculation(JobRuntime& rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills the candidate from a worker's result and finishes it.
  void ApplyResult(JobRuntime& rt, int index, const nanonas::v1::EvaluateResult& r,
                   const std::string& worker, double wall_seconds)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The evaluation ended without a result (worker lost, RPC error): retry or fail the candidate.
  void RetryOrFail(const std::string& eval_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropWorker(const std::string& worker_id, const std::string& reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelEvaluation(const std::string& eval_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnEvaluationEvent(const std::string& eval_id, const nanonas::v1::EvaluateEvent& event);
  void OnEvaluationDone(const std::string& eval_id,
                        absl::StatusOr<nanonas::v1::EvaluateResult> result);
  void UpdateMetrics() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Architecture> ArchitectureOf(const nanonas::v1::Job& job, int k, int c) const;

  const CoordinatorOptions options_;
  const CoordinatorDeps deps_;

  mutable absl::Mutex mu_;
  absl::CondVar changed_;  // any event; watchers wait on it
  std::vector<std::string> job_order_ ABSL_GUARDED_BY(mu_);  // creation order
  std::map<std::string, JobRuntime> jobs_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, WorkerEntry> workers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, EvalEntry> evals_ ABSL_GUARDED_BY(mu_);  // live dispatches
  // Connector handles until their on_done has run (outlive evals_ entries after a loss/cancel).
  std::map<std::string, std::unique_ptr<RunningEvaluation>> handles_ ABSL_GUARDED_BY(mu_);
  uint64_t progress_counter_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t eval_counter_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_COORDINATOR_H_
