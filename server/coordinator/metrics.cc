#include "server/coordinator/metrics.h"

#include "prometheus/family.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry) {
  auto& jobs = prometheus::BuildGauge()
                   .Name("nanonas_coordinator_jobs")
                   .Help("Jobs known to the coordinator, by state.")
                   .Register(registry);
  const std::pair<v1::JobState, const char*> job_states[] = {
      {v1::JOB_STATE_QUEUED, "queued"},       {v1::JOB_STATE_RUNNING, "running"},
      {v1::JOB_STATE_SUCCEEDED, "succeeded"}, {v1::JOB_STATE_FAILED, "failed"},
      {v1::JOB_STATE_CANCELLED, "cancelled"}};
  for (const auto& [state, name] : job_states) jobs_[state] = &jobs.Add({{"state", name}});

  auto& candidates = prometheus::BuildCounter()
                         .Name("nanonas_coordinator_candidates_total")
                         .Help("Candidates that reached a final state, by outcome.")
                         .Register(registry);
  const std::pair<v1::CandidateState, const char*> outcomes[] = {
      {v1::CANDIDATE_STATE_DONE, "done"},
      {v1::CANDIDATE_STATE_INFEASIBLE, "infeasible"},
      {v1::CANDIDATE_STATE_HOST_INFEASIBLE, "host_infeasible"},
      {v1::CANDIDATE_STATE_FAILED, "failed"},
      {v1::CANDIDATE_STATE_CANCELLED, "cancelled"}};
  for (const auto& [state, name] : outcomes) {
    candidates_[state] = &candidates.Add({{"outcome", name}});
  }

  evaluation_seconds_ =
      &prometheus::BuildHistogram()
           .Name("nanonas_coordinator_evaluation_duration_seconds")
           .Help("Wall time of candidate evaluations on workers, dispatch to result.")
           .Register(registry)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.5, 1, 2, 5, 10, 30, 60, 120, 300,
                                                            600, 1800, 3600});
  queue_depth_ = &prometheus::BuildGauge()
                      .Name("nanonas_coordinator_queue_depth")
                      .Help("Candidates waiting for a free worker slot.")
                      .Register(registry)
                      .Add({});
  workers_connected_ = &prometheus::BuildGauge()
                            .Name("nanonas_coordinator_workers_connected")
                            .Help("Registered workers with a recent heartbeat.")
                            .Register(registry)
                            .Add({});
  workers_busy_ = &prometheus::BuildGauge()
                       .Name("nanonas_coordinator_workers_busy")
                       .Help("Workers running at least one evaluation.")
                       .Register(registry)
                       .Add({});
  worker_losses_ = &prometheus::BuildCounter()
                        .Name("nanonas_coordinator_worker_losses_total")
                        .Help("Workers dropped after a broken stream or missed heartbeats.")
                        .Register(registry)
                        .Add({});
  dispatches_ = &prometheus::BuildCounter()
                     .Name("nanonas_coordinator_dispatches_total")
                     .Help("Evaluations sent to workers, retries included.")
                     .Register(registry)
                     .Add({});
}

void CoordinatorMetrics::SetJobs(v1::JobState state, double count) {
  auto it = jobs_.find(state);
  if (it != jobs_.end()) it->second->Set(count);
}
void CoordinatorMetrics::CountCandidate(v1::CandidateState state) {
  auto it = candidates_.find(state);
  if (it != candidates_.end()) it->second->Increment();
}
void CoordinatorMetrics::ObserveEvaluationSeconds(double seconds) {
  evaluation_seconds_->Observe(seconds);
}
void CoordinatorMetrics::SetQueueDepth(double n) { queue_depth_->Set(n); }
void CoordinatorMetrics::SetWorkers(double connected, double busy) {
  workers_connected_->Set(connected);
  workers_busy_->Set(busy);
}
void CoordinatorMetrics::CountWorkerLoss() { worker_losses_->Increment(); }
void CoordinatorMetrics::CountDispatch() { dispatches_->Increment(); }

}  // namespace nanonas::coordinator
