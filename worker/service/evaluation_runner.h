// Runs evaluations in isolated child processes: the transport-free core of the worker service.
//
// Run() takes max(1, request.threads) slots, or as many as are free (at least one;
// RESOURCE_EXHAUSTED when none is), and the child trains with that many threads (the request it
// gets says request.threads = the slots granted); busy_slots() counts slots, so a final training
// with 4 threads shows as 4 busy slots. It gets the dataset from the cache (streaming it from the
// coordinator to disk on a miss), starts the child (`child_command` plus
// `--dataset-file PATH --memory-limit BYTES`, plus `--test-dataset-file PATH` for a final training
// with a test set; the child maps the file, see evaluation_child.h), sends it the request over its
// stdin, relays its progress and epoch events, and watches it: its ANONYMOUS memory (RssAnon of
// /proc/<pid>/status: heap and private pages, not the file-backed pages of the mapped dataset,
// which are shared between children and reclaimable) is polled every rss_poll_ms and the child is
// killed when over the budget (HOST_INFEASIBLE); a cancel request kills it (CANCELLED); a crash
// ends the evaluation FAILED with the reason (e.g. the signal) and the worker keeps serving.
// Reported figures: peak_anonymous_bytes is the highest RssAnon sampled (every rss_poll_ms, a last
// sample as the child's output closes, and the child's own reading with its result), so a spike
// shorter than the poll interval can be missed; peak_memory_bytes is the child's own VmHWM (all
// resident pages, mapped dataset included) or the highest VmRSS polled.
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
  int rss_poll_ms = 50;             // memory sampling period
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
  // busy). `sink` receives progress and epoch events (not the result) on the calling thread (it
  // may call Run() again: the slots of this evaluation stay held); `cancelled` is polled while
  // the child runs.
  absl::StatusOr<nanonas::v1::EvaluateResult> Run(const nanonas::v1::EvaluateRequest& request,
                                                  const EventSink& sink,
                                                  const CancelCheck& cancelled);

  // The memory limit of one request: the lower of the worker budget and the job's host memory
  // (a zero on either side means "no limit" from that side; 0 = unlimited).
  int64_t EffectiveBudget(const nanonas::v1::EvaluateRequest& request) const;

  // Slots in use: the sum of the slots granted to the running evaluations.
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
