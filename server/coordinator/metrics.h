// The coordinator's Prometheus metrics. One object per process, registered on the caller's
// Registry; thread-safe (prometheus-cpp metrics are; the pending-since map has its own mutex).
//   nanonas_coordinator_jobs{state}                         gauge
//   nanonas_coordinator_candidates_total{outcome}           counter
//   nanonas_coordinator_evaluation_duration_seconds         histogram (evaluations on workers)
//   nanonas_coordinator_queue_depth                         gauge (candidates waiting for a worker)
//   nanonas_coordinator_workers_connected                   gauge
//   nanonas_coordinator_workers_busy                        gauge (workers running >= 1 evaluation)
//   nanonas_coordinator_worker_losses_total                 counter
//   nanonas_coordinator_dispatches_total                    counter
//   nanonas_queue_wait_seconds{kind}                        histogram: PENDING to dispatch of a
//                                                           candidate / final training (each wait;
//                                                           a re-queued one waits again)
//   nanonas_job_duration_seconds{state}                     histogram: submission to the end
//                                                           (succeeded / failed / cancelled)
//   nanonas_job_candidates_evaluated                        histogram: candidates a job trained to
//                                                           an accuracy (DONE), at its end
//   nanonas_final_training_duration_seconds                 histogram: final trainings DONE
//   nanonas_dataset_preparation_duration_seconds{reused}    histogram: one dataset's preparation
//                                                           (decode, validate, pack) for a job;
//                                                           reused="true": already packed
//   nanonas_dataset_prepared_images_total                   counter: images decoded by them
//   nanonas_build_info{version,commit}                      gauge, 1 (build_info.h)
// No label names a job or a candidate (cardinality stays fixed). The histogram buckets (public
// below, so tests can check them) cover what this project measures: evaluations of 0.5 s to 8 h,
// jobs of seconds to days, waits of milliseconds to hours.
#ifndef NANONAS_SERVER_COORDINATOR_METRICS_H_
#define NANONAS_SERVER_COORDINATOR_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nanonas::coordinator {

class CoordinatorMetrics {
 public:
  static const std::vector<double>& EvaluationBuckets();   // seconds, also final trainings
  static const std::vector<double>& QueueWaitBuckets();    // seconds
  static const std::vector<double>& JobDurationBuckets();  // seconds
  static const std::vector<double>& CandidateCountBuckets();
  static const std::vector<double>& PreparationBuckets();  // seconds

  explicit CoordinatorMetrics(prometheus::Registry& registry);

  void SetJobs(nanonas::v1::JobState state, double count);
  // outcome: the candidate's final state (done, infeasible, host_infeasible, failed, cancelled).
  void CountCandidate(nanonas::v1::CandidateState state);
  void ObserveEvaluationSeconds(double seconds);
  void SetQueueDepth(double n);
  void SetWorkers(double connected, double busy);
  void CountWorkerLoss();
  void CountDispatch();
  // One dataset prepared for a job in `seconds` (`reused`: nothing decoded), `images` decoded.
  void ObservePreparation(double seconds, bool reused, int64_t images);
  // Every event the coordinator committed for `job` (its state after the event), stamped with its
  // time: a candidate or final training becoming PENDING starts a queue wait, its RUNNING event
  // (dispatch) ends it; a DONE final training and a job's end are observed.
  void ObserveEvent(const nanonas::v1::Job& job, const nanonas::v1::JobEvent& event);

 private:
  // (job id, 0 candidate / 1 final training, k, c) -> when it became PENDING.
  using WaitKey = std::tuple<std::string, int, int, int>;
  void TrackWait(const WaitKey& key, nanonas::v1::CandidateState state, absl::Time time);
  void EndJob(const nanonas::v1::Job& job, nanonas::v1::JobState state, absl::Time time);

  std::map<int, prometheus::Gauge*> jobs_;
  std::map<int, prometheus::Counter*> candidates_;
  prometheus::Histogram* evaluation_seconds_;
  prometheus::Gauge* queue_depth_;
  prometheus::Gauge* workers_connected_;
  prometheus::Gauge* workers_busy_;
  prometheus::Counter* worker_losses_;
  prometheus::Counter* dispatches_;
  prometheus::Histogram* queue_wait_candidate_;
  prometheus::Histogram* queue_wait_final_;
  std::map<int, prometheus::Histogram*> job_seconds_;  // by terminal JobState
  prometheus::Histogram* job_candidates_;
  prometheus::Histogram* final_training_seconds_;
  prometheus::Histogram* preparation_seconds_fresh_;
  prometheus::Histogram* preparation_seconds_reused_;
  prometheus::Counter* prepared_images_;

  absl::Mutex mu_;
  std::map<WaitKey, absl::Time> pending_since_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_METRICS_H_
