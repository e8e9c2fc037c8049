#include "worker/service/worker_metrics.h"

namespace nanonas {

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
                    .Add({}, prometheus::Histogram::BucketBoundaries{0.5, 1, 2, 5, 10, 20, 30, 60,
                                                                     120, 300, 600, 1800, 3600})),
      images_per_second_(
          prometheus::BuildHistogram()
              .Name("nanonas_worker_training_images_per_second")
              .Help("Training throughput of completed evaluations.")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{100, 250, 500, 1000, 2000, 4000,
                                                               8000, 16000, 32000})),
      peak_memory_(
          prometheus::BuildHistogram()
              .Name("nanonas_worker_evaluation_peak_memory_bytes")
              .Help("OS-measured peak resident memory of an evaluation process.")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{32e6, 64e6, 128e6, 256e6, 512e6, 1e9,
                                                               2e9, 4e9, 8e9})),
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
