#include "server/coordinator/metrics.h"

#include <algorithm>
#include <map>
#include <utility>

#include "common/metrics/build_info_metric.h"
#include "prometheus/family.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// The jobs' states and their label values, in exposition order.
constexpr std::pair<v1::JobState, const char*> kJobStates[] = {
    {v1::JOB_STATE_QUEUED, "queued"},   {v1::JOB_STATE_PREPARING, "preparing"},
    {v1::JOB_STATE_RUNNING, "running"}, {v1::JOB_STATE_SUCCEEDED, "succeeded"},
    {v1::JOB_STATE_FAILED, "failed"},   {v1::JOB_STATE_CANCELLED, "cancelled"}};

bool IsTerminalState(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

// nanonas_coordinator_jobs{state}, by JobState.
std::map<int, prometheus::Gauge*> RegisterJobGauges(prometheus::Registry& registry) {
  auto& jobs = prometheus::BuildGauge()
                   .Name("nanonas_coordinator_jobs")
                   .Help("Jobs known to the coordinator, by state.")
                   .Register(registry);
  std::map<int, prometheus::Gauge*> gauges;
  for (const auto& [state, name] : kJobStates) gauges[state] = &jobs.Add({{"state", name}});
  return gauges;
}

// nanonas_coordinator_candidates_total{outcome}, by CandidateState.
std::map<int, prometheus::Counter*> RegisterCandidateCounters(prometheus::Registry& registry) {
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
  std::map<int, prometheus::Counter*> counters;
  for (const auto& [state, name] : outcomes) {
    counters[state] = &candidates.Add({{"outcome", name}});
  }
  return counters;
}

// nanonas_job_duration_seconds{state}, by terminal JobState.
std::map<int, prometheus::Histogram*> RegisterJobDurations(prometheus::Registry& registry,
                                                           const std::vector<double>& buckets) {
  auto& job_seconds = prometheus::BuildHistogram()
                          .Name("nanonas_job_duration_seconds")
                          .Help("Time from a job's submission to its end, by final state.")
                          .Register(registry);
  std::map<int, prometheus::Histogram*> histograms;
  for (const auto& [state, name] : kJobStates) {
    if (!IsTerminalState(state)) continue;
    histograms[state] = &job_seconds.Add({{"state", name}}, buckets);
  }
  return histograms;
}

}  // namespace

// A quick candidate takes seconds; the final training of a VWW-sized set ~30 min; allow hours.
const std::vector<double>& CoordinatorMetrics::EvaluationBuckets() {
  static const std::vector<double> b{0.5, 1,   2,   5,    10,   20,   30,    60,
                                     120, 300, 600, 1800, 3600, 7200, 14400, 28800};
  return b;
}
// Dispatch follows in milliseconds on a free worker; behind other jobs a wait can last hours.
const std::vector<double>& CoordinatorMetrics::QueueWaitBuckets() {
  static const std::vector<double> b{0.01, 0.05, 0.1,  0.5,  1,    5,     10,    30,   60,
                                     300,  600,  1800, 3600, 7200, 14400, 28800, 86400};
  return b;
}
// Seconds (a tiny grid) to days (a large search plus a long final training, queued behind others).
const std::vector<double>& CoordinatorMetrics::JobDurationBuckets() {
  static const std::vector<double> b{1,    10,   30,    60,    300,   600,    1800,
                                     3600, 7200, 14400, 28800, 86400, 172800, 604800};
  return b;
}
// Candidates trained per job: a handful (tight limits) to hundreds (loose limits, max_k unset).
const std::vector<double>& CoordinatorMetrics::CandidateCountBuckets() {
  static const std::vector<double> b{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
  return b;
}

// A reused (already packed) set answers at once; decoding a large set takes seconds to minutes.
const std::vector<double>& CoordinatorMetrics::PreparationBuckets() {
  static const std::vector<double> b{0.01, 0.1, 0.5, 1,   2,   5,    10,  20,
                                     30,   60,  120, 300, 600, 1800, 3600};
  return b;
}

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry) {
  jobs_ = RegisterJobGauges(registry);
  candidates_ = RegisterCandidateCounters(registry);
  evaluation_seconds_ =
      &prometheus::BuildHistogram()
           .Name("nanonas_coordinator_evaluation_duration_seconds")
           .Help("Wall time of candidate evaluations on workers, dispatch to result.")
           .Register(registry)
           .Add({}, EvaluationBuckets());
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
  auto& waits = prometheus::BuildHistogram()
                    .Name("nanonas_queue_wait_seconds")
                    .Help(
                        "Time from a candidate or final training becoming PENDING to its "
                        "dispatch to a worker, by kind.")
                    .Register(registry);
  queue_wait_candidate_ = &waits.Add({{"kind", "candidate"}}, QueueWaitBuckets());
  queue_wait_final_ = &waits.Add({{"kind", "final_training"}}, QueueWaitBuckets());
  job_seconds_ = RegisterJobDurations(registry, JobDurationBuckets());
  job_candidates_ = &prometheus::BuildHistogram()
                         .Name("nanonas_job_candidates_evaluated")
                         .Help("Candidates a job trained to an accuracy, observed at its end.")
                         .Register(registry)
                         .Add({}, CandidateCountBuckets());
  final_training_seconds_ =
      &prometheus::BuildHistogram()
           .Name("nanonas_final_training_duration_seconds")
           .Help("Duration of the final trainings that finished (DONE) on a worker.")
           .Register(registry)
           .Add({}, EvaluationBuckets());
  auto& preparations = prometheus::BuildHistogram()
                           .Name("nanonas_dataset_preparation_duration_seconds")
                           .Help(
                               "Time to prepare one dataset of a job (decode, validate, pack at "
                               "its input size); reused: it was already packed.")
                           .Register(registry);
  preparation_seconds_fresh_ = &preparations.Add({{"reused", "false"}}, PreparationBuckets());
  preparation_seconds_reused_ = &preparations.Add({{"reused", "true"}}, PreparationBuckets());
  prepared_images_ = &prometheus::BuildCounter()
                          .Name("nanonas_dataset_prepared_images_total")
                          .Help("Images decoded while preparing the datasets of jobs.")
                          .Register(registry)
                          .Add({});
  RegisterBuildInfo(registry);
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
void CoordinatorMetrics::ObservePreparation(double seconds, bool reused, int64_t images) {
  (reused ? preparation_seconds_reused_ : preparation_seconds_fresh_)
      ->Observe(std::max(0.0, seconds));
  prepared_images_->Increment(static_cast<double>(std::max<int64_t>(0, images)));
}

void CoordinatorMetrics::ObserveEvent(const v1::Job& job, const v1::JobEvent& event) {
  const absl::Time time = TimeOf(event.time());
  switch (event.kind_case()) {
    case v1::JobEvent::kCandidate: {
      const v1::Candidate& c = event.candidate();
      TrackWait({job.id(), 0, c.k(), c.c()}, c.state(), time);
      break;
    }
    case v1::JobEvent::kFinalTraining: {
      const v1::FinalTraining& ft = event.final_training();
      TrackWait({job.id(), 1, ft.k(), ft.c()}, ft.state(), time);
      if (ft.state() == v1::CANDIDATE_STATE_DONE) {
        final_training_seconds_->Observe(ft.duration_seconds());
      }
      break;
    }
    case v1::JobEvent::kJobState:
      EndJob(job, event.job_state(), time);
      break;
    default:
      break;
  }
}

void CoordinatorMetrics::TrackWait(const WaitKey& key, v1::CandidateState state, absl::Time time) {
  absl::MutexLock lock(&mu_);
  if (state == v1::CANDIDATE_STATE_PENDING) {
    pending_since_[key] = time;  // a re-queued evaluation waits again
    return;
  }
  auto it = pending_since_.find(key);
  if (it == pending_since_.end()) return;
  if (state == v1::CANDIDATE_STATE_RUNNING) {
    const double seconds = std::max(0.0, absl::ToDoubleSeconds(time - it->second));
    (std::get<1>(key) == 0 ? queue_wait_candidate_ : queue_wait_final_)->Observe(seconds);
  }
  pending_since_.erase(it);  // dispatched, or settled without a worker
}

void CoordinatorMetrics::EndJob(const v1::Job& job, v1::JobState state, absl::Time time) {
  auto hist = job_seconds_.find(state);
  if (hist == job_seconds_.end()) return;  // not an end
  {
    absl::MutexLock lock(&mu_);
    auto it = pending_since_.lower_bound(WaitKey{job.id(), 0, 0, 0});
    while (it != pending_since_.end() && std::get<0>(it->first) == job.id()) {
      it = pending_since_.erase(it);
    }
  }
  if (job.has_created()) {
    hist->second->Observe(std::max(0.0, absl::ToDoubleSeconds(time - TimeOf(job.created()))));
  }
  int evaluated = 0;
  for (const v1::Candidate& c : job.candidates())
    evaluated += c.state() == v1::CANDIDATE_STATE_DONE;
  job_candidates_->Observe(evaluated);
}

}  // namespace nanonas::coordinator
