#include "worker/service/worker_metrics.h"

#include "common/metrics/build_info_metric.h"

namespace nanonas {

// Throughput measured here: ~3,000 img/s (large candidates, 50x50x3) to ~150,000 img/s ((1,0),
// 28x28x1, 2 threads); the old top bucket (32,000) hid a third of the observations.
const std::vector<double>& WorkerMetrics::ImagesPerSecondBuckets() {
  static const std::vector<double> b{100,   250,   500,    1000,   2000,   4000,    8000,   16000,
                                     32000, 64000, 128000, 256000, 512000, 1024000, 2048000};
  return b;
}
// A quick candidate takes seconds; the final training of a VWW-sized set ~30 min; allow hours.
const std::vector<double>& WorkerMetrics::DurationBuckets() {
  static const std::vector<double> b{0.5, 1,   2,   5,    10,   20,   30,    60,
                                     120, 300, 600, 1800, 3600, 7200, 14400, 28800};
  return b;
}
// 32 MB to 8 GiB measured/allowed; the top finite bucket (32 GB) is above any budget used here.
const std::vector<double>& WorkerMetrics::PeakMemoryBuckets() {
  static const std::vector<double> b{16e6, 32e6, 64e6, 128e6, 256e6, 512e6,
                                     1e9,  2e9,  4e9,  8e9,   16e9,  32e9};
  return b;
}

WorkerMetrics::WorkerMetrics(prometheus::Registry& registry)
    : evaluations_(prometheus::BuildCounter()
                       .Name("nanonas_worker_evaluations_total")
                       .Help("Evaluations finished by this worker, by outcome.")
                       .Register(registry)),
      slots_(prometheus::BuildGauge()
                 .Name("nanonas_worker_slots")
                 .Help("Evaluations this worker runs at once.")
                 .Register(registry)
                 .Add({})),
      busy_slots_(prometheus::BuildGauge()
                      .Name("nanonas_worker_busy_slots")
                      .Help("Evaluation slots in use.")
                      .Register(registry)
                      .Add({})),
      memory_budget_(prometheus::BuildGauge()
                         .Name("nanonas_worker_memory_budget_bytes")
                         .Help("Memory budget of one evaluation on this worker.")
                         .Register(registry)
                         .Add({})),
      duration_(prometheus::BuildHistogram()
                    .Name("nanonas_worker_evaluation_duration_seconds")
                    .Help("Wall time of an evaluation, child start to result.")
                    .Register(registry)
                    .Add({}, DurationBuckets())),
      images_per_second_(prometheus::BuildHistogram()
                             .Name("nanonas_worker_training_images_per_second")
                             .Help("Training throughput of completed evaluations.")
                             .Register(registry)
                             .Add({}, ImagesPerSecondBuckets())),
      peak_memory_(prometheus::BuildHistogram()
                       .Name("nanonas_worker_evaluation_peak_memory_bytes")
                       .Help("OS-measured peak resident memory of an evaluation process.")
                       .Register(registry)
                       .Add({}, PeakMemoryBuckets())),
      peak_anonymous_(prometheus::BuildHistogram()
                          .Name("nanonas_worker_evaluation_peak_anonymous_bytes")
                          .Help("Peak anonymous memory (RssAnon, sampled) of an evaluation "
                                "process: what the memory budget limits; a memory-mapped "
                                "dataset is not in it.")
                          .Register(registry)
                          .Add({}, PeakMemoryBuckets())),
      cache_bytes_(prometheus::BuildGauge()
                       .Name("nanonas_worker_dataset_cache_bytes")
                       .Help("Bytes held in the worker's dataset cache.")
                       .Register(registry)
                       .Add({})) {
  for (const char* o : {"done", "host_infeasible", "failed", "cancelled", "rejected"}) {
    evaluations_by_outcome_[o] = &evaluations_.Add({{"outcome", o}});
  }
  auto& fetches = prometheus::BuildCounter()
                      .Name("nanonas_worker_dataset_fetches_total")
                      .Help("Dataset lookups by result: cache hit, fetched (miss), error.")
                      .Register(registry);
  for (const char* r : {"hit", "miss", "error"}) fetches_[r] = &fetches.Add({{"result", r}});
  RegisterBuildInfo(registry);
}

void WorkerMetrics::RecordEvaluation(const std::string& outcome, double seconds,
                                     double images_per_second, int64_t peak_memory_bytes) {
  auto it = evaluations_by_outcome_.find(outcome);
  if (it == evaluations_by_outcome_.end()) it = evaluations_by_outcome_.find("failed");
  it->second->Increment();
  if (outcome == "rejected") return;
  duration_.Observe(seconds);
  if (outcome == "done" && images_per_second > 0) images_per_second_.Observe(images_per_second);
  if (peak_memory_bytes > 0) peak_memory_.Observe(static_cast<double>(peak_memory_bytes));
}

void WorkerMetrics::RecordPeakAnonymousMemory(int64_t bytes) {
  if (bytes > 0) peak_anonymous_.Observe(static_cast<double>(bytes));
}

void WorkerMetrics::SetSlots(int slots) { slots_.Set(slots); }
void WorkerMetrics::SetBusySlots(int busy) { busy_slots_.Set(busy); }
void WorkerMetrics::SetMemoryBudget(int64_t bytes) {
  memory_budget_.Set(static_cast<double>(bytes));
}
void WorkerMetrics::SetDatasetCacheBytes(int64_t bytes) {
  cache_bytes_.Set(static_cast<double>(bytes));
}
void WorkerMetrics::RecordDatasetFetch(const std::string& result) {
  auto it = fetches_.find(result);
  if (it != fetches_.end()) it->second->Increment();
}

}  // namespace nanonas
