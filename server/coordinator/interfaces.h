// The coordinator core's collaborators, each behind a small interface so that the core can be
// tested without gRPC, SQLite, oneDNN or threads:
//   CoordinatorStore  durable job records and events (server/store adapts to it; in-memory here)
//   WorkerConnector   starts one evaluation on one worker (gRPC in server/grpc; fakes in tests)
//   ResourceModel     MCU figures of an architecture (common/resources ComputeMcuFigures)
//   HostMemoryModel   training peak memory estimate (common/resources EstimateHostTrainingBytes)
#ifndef NANONAS_SERVER_COORDINATOR_INTERFACES_H_
#define NANONAS_SERVER_COORDINATOR_INTERFACES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/resources/figures.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas::coordinator {

// Durable records. Implementations must be thread-safe.
class CoordinatorStore {
 public:
  virtual ~CoordinatorStore() = default;
  // Atomically inserts or replaces the job (spec, state, whole candidate path, result) and, when
  // `event` is not null, appends it (its sequence set by the caller: the job's next, 1, 2, ...).
  virtual absl::Status Commit(const nanonas::v1::Job& job, const nanonas::v1::JobEvent* event) = 0;
  // Every job, in creation order.
  virtual absl::StatusOr<std::vector<nanonas::v1::Job>> LoadJobs() = 0;
  // Events of a job with sequence > after_sequence, in order.
  virtual absl::StatusOr<std::vector<nanonas::v1::JobEvent>> LoadEvents(const std::string& job_id,
                                                                        int64_t after_sequence) = 0;
};

// Callbacks of one running evaluation. May be called from any thread, never after OnDone.
struct EvaluationCallbacks {
  std::function<void(const nanonas::v1::EvaluateEvent&)> on_event;  // progress / epoch
  // The final result, or the transport error (worker lost, RPC failed, cancelled).
  std::function<void(absl::StatusOr<nanonas::v1::EvaluateResult>)> on_done;
};

class RunningEvaluation {
 public:
  virtual ~RunningEvaluation() = default;
  // Asks the worker to stop (cancels the RPC). Non-blocking; on_done still follows.
  virtual void Cancel() = 0;
};

class WorkerConnector {
 public:
  virtual ~WorkerConnector() = default;
  // Starts `request` on `worker`. Must not call the callbacks synchronously from inside Start
  // (the core holds its lock while calling Start and Cancel).
  virtual std::unique_ptr<RunningEvaluation> Start(const nanonas::v1::WorkerDescription& worker,
                                                   const nanonas::v1::EvaluateRequest& request,
                                                   EvaluationCallbacks callbacks) = 0;
};

using McuFigures = nanonas::McuFigures;  // common/resources/figures.h
using ResourceModel = std::function<absl::StatusOr<McuFigures>(const Architecture& arch)>;
// Peak training memory (bytes) of evaluating `arch` on `dataset_bytes` decoded pixels.
using HostMemoryModel = std::function<int64_t(const Architecture& arch, int64_t dataset_bytes,
                                              const nanonas::v1::EvaluationSettings& settings)>;

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_INTERFACES_H_
