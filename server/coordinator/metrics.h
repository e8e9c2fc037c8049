// The coordinator's Prometheus metrics. One object per process, registered on the caller's
// Registry; thread-safe (prometheus-cpp metrics are).
//   nanonas_coordinator_jobs{state}                         gauge
//   nanonas_coordinator_candidates_total{outcome}           counter
//   nanonas_coordinator_evaluation_duration_seconds         histogram (evaluations on workers)
//   nanonas_coordinator_queue_depth                         gauge (candidates waiting for a worker)
//   nanonas_coordinator_workers_connected                   gauge
//   nanonas_coordinator_workers_busy                        gauge (workers running >= 1 evaluation)
//   nanonas_coordinator_worker_losses_total                 counter
//   nanonas_coordinator_dispatches_total                    counter
#ifndef NANONAS_SERVER_COORDINATOR_METRICS_H_
#define NANONAS_SERVER_COORDINATOR_METRICS_H_

#include <map>

#include "nanonas/v1/nanonas.pb.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nanonas::coordinator {

class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  void SetJobs(nanonas::v1::JobState state, double count);
  // outcome: the candidate's final state (done, infeasible, host_infeasible, failed, cancelled).
  void CountCandidate(nanonas::v1::CandidateState state);
  void ObserveEvaluationSeconds(double seconds);
  void SetQueueDepth(double n);
  void SetWorkers(double connected, double busy);
  void CountWorkerLoss();
  void CountDispatch();

 private:
  std::map<int, prometheus::Gauge*> jobs_;
  std::map<int, prometheus::Counter*> candidates_;
  prometheus::Histogram* evaluation_seconds_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* workers_connected_;
  prometheus::Gauge* workers_busy_;
  prometheus::Counter* worker_losses_;
  prometheus::Counter* dispatches_;
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_METRICS_H_
