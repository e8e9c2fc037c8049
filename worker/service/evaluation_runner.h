// Runs evaluations in isolated child processes: the transport-free core of the worker service.
//
// Run() takes a slot (RESOURCE_EXHAUSTED when all are busy), gets the dataset from the cache
// (fetching it from the coordinator on a miss), starts the child (`child_command` plus
// `--dataset-file PATH --memory-limit BYTES`, plus `--test-dataset-file PATH` for a final training
// with a test set), sends it the request over its stdin, relays its
// progress and epoch events, and watches it: its resident memory is polled every rss_poll_ms and
// the child is killed when over the budget (HOST_INFEASIBLE); a cancel request kills it
// (CANCELLED); a crash ends the evaluation FAILED with the reason (e.g. the signal) and the worker
// keeps serving. The reported peak memory is the child's OS-measured peak RSS (wait4).
//
// Thread-safe: Run() may be called concurrently (up to `slots` at once).
#ifndef NANONAS_WORKER_SERVICE_EVALUATION_RUNNER_H_
#define NANONAS_WORKER_SERVICE_EVALUATION_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nanonas/v1/nanonas.pb.h"
#include "worker/service/dataset_cache.h"
#include "worker/service/worker_metrics.h"

namespace nanonas {

struct EvaluationRunnerOptions {
  std::vector<std::string> child_command;  // e.g. {"/proc/self/exe", "--evaluate-child"}
  int slots = 1;
  int64_t memory_budget_bytes = 0;  // worker budget; 0 = none
  int rss_poll_ms = 50;
};

class EvaluationRunner {
 public:
  using EventSink = std::function<void(const nanonas::v1::EvaluateEvent&)>;
  using CancelCheck = std::function<bool()>;

  // `cache` and `metrics` (may be null) must outlive the runner.
  EvaluationRunner(EvaluationRunnerOptions options, DatasetCache* cache,
                   DatasetCache::Fetcher fetcher, WorkerMetrics* metrics);

  // Returns the evaluation's result (DONE, HOST_INFEASIBLE, FAILED or CANCELLED) or an RPC-level
  // error: INVALID_ARGUMENT (malformed request, says which field), RESOURCE_EXHAUSTED (all slots
  // busy). `sink` receives progress and epoch events (not the result) on the calling thread;
  // `cancelled` is polled while the child runs.
  absl::StatusOr<nanonas::v1::EvaluateResult> Run(const nanonas::v1::EvaluateRequest& request,
                                                  const EventSink& sink,
                                                  const CancelCheck& cancelled);

  // The memory limit of one request: the lower of the worker budget and the job's host memory
  // (a zero on either side means "no limit" from that side; 0 = unlimited).
  int64_t EffectiveBudget(const nanonas::v1::EvaluateRequest& request) const;

  int busy_slots() const { return busy_.load(); }
  int slots() const { return options_.slots; }

 private:
  nanonas::v1::EvaluateResult RunChild(const nanonas::v1::EvaluateRequest& request,
                                       const std::string& dataset_path,
                                       const std::string& test_path, int64_t budget,
                                       const EventSink& sink, const CancelCheck& cancelled);

  const EvaluationRunnerOptions options_;
  DatasetCache* cache_;
  DatasetCache::Fetcher fetcher_;
  WorkerMetrics* metrics_;
  std::atomic<int> busy_{0};
};

// Validates the fields a worker needs; INVALID_ARGUMENT naming the first bad one.
absl::Status ValidateEvaluateRequest(const nanonas::v1::EvaluateRequest& request);

// "done", "host_infeasible", "failed", "cancelled" for metrics labels.
std::string OutcomeLabel(nanonas::v1::CandidateState state);

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_EVALUATION_RUNNER_H_
