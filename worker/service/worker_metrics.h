// Prometheus metrics of one worker process. Registers its families once on the given registry and
// keeps handles to the children. Thread-safe (prometheus-cpp metrics are).
//
//   nanonas_worker_evaluations_total{outcome}            evaluations by final state
//   nanonas_worker_slots / nanonas_worker_busy_slots     evaluation slots, in use
//   nanonas_worker_evaluation_duration_seconds           histogram, every finished evaluation
//   nanonas_worker_training_images_per_second            histogram, completed evaluations
//   nanonas_worker_evaluation_peak_memory_bytes          histogram, OS-measured peak RSS
//   nanonas_worker_dataset_cache_bytes                   bytes in the dataset cache
//   nanonas_worker_dataset_fetches_total{result}         cache hit / miss / error
//   nanonas_worker_memory_budget_bytes                   the worker's memory budget
//   nanonas_build_info{version,commit}                   1 (build_info.h)
// The histogram buckets (public below, so tests can check them) cover what this project measures:
// 0.5 s to 8 h per evaluation, ~500 to ~500,000 training images/s, 32 MB to 8 GiB peak memory.
#ifndef NANONAS_WORKER_SERVICE_WORKER_METRICS_H_
#define NANONAS_WORKER_SERVICE_WORKER_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nanonas {

class WorkerMetrics {
 public:
  static const std::vector<double>& DurationBuckets();         // seconds
  static const std::vector<double>& ImagesPerSecondBuckets();  // training images/s
  static const std::vector<double>& PeakMemoryBuckets();       // bytes

  explicit WorkerMetrics(prometheus::Registry& registry);

  // outcome: "done", "host_infeasible", "failed", "cancelled", "rejected".
  void RecordEvaluation(const std::string& outcome, double seconds, double images_per_second,
                        int64_t peak_memory_bytes);
  // The sampled peak anonymous memory (RssAnon) of an evaluation process that ran (> 0).
  void RecordPeakAnonymousMemory(int64_t bytes);
  void SetSlots(int slots);
  void SetBusySlots(int busy);
  void SetMemoryBudget(int64_t bytes);
  void SetDatasetCacheBytes(int64_t bytes);
  // result: "hit", "miss", "error".
  void RecordDatasetFetch(const std::string& result);

 private:
  prometheus::Family<prometheus::Counter>& evaluations_;
  std::map<std::string, prometheus::Counter*> evaluations_by_outcome_;
  prometheus::Gauge& slots_;
  prometheus::Gauge& busy_slots_;
  prometheus::Gauge& memory_budget_;
  prometheus::Histogram& duration_;
  prometheus::Histogram& images_per_second_;
  prometheus::Histogram& peak_memory_;
  prometheus::Histogram& peak_anonymous_;
  prometheus::Gauge& cache_bytes_;
  std::map<std::string, prometheus::Counter*> fetches_;
};

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_WORKER_METRICS_H_
