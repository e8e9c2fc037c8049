// The training engine: float32 training and inference of NanoNAS candidates on oneDNN 2.6 (CPU).
//
// Thread-safety: each call is independent; a call uses `threads` oneDNN threads of its own.
#ifndef NANONAS_WORKER_ENGINE_TRAINER_H_
#define NANONAS_WORKER_ENGINE_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/api/defaults.h"
#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"

namespace nanonas {

struct TrainOptions {
  int epochs = defaults::kEpochs;
  float learning_rate = defaults::kLearningRate;  // Adam, beta1 0.9, beta2 0.999, eps 1e-7 (Keras)
  int batch_size = defaults::kBatchSize;
  uint64_t seed = defaults::kSeed;   // initialisation and per-epoch shuffle
  int threads = 1;                   // oneDNN threads for this run
  int progress_every_batches = 100;  // kBatch progress cadence (0 = epochs only)
  bool keep_best_weights = false;    // fill TrainResult::best_weights (Train() sets it)
};

struct EpochStats {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;
  double validation_loss = 0, validation_accuracy = 0;
  double seconds = 0;
};

struct Progress {
  enum class Kind { kBatch, kEpoch };
  Kind kind = Kind::kBatch;
  int epoch = 1;      // 1-based
  int64_t batch = 0;  // batches done in this epoch
  int64_t batches_per_epoch = 0;
  double running_loss = 0, running_accuracy = 0;  // over this epoch so far
  EpochStats epoch_stats;                         // valid when kind == kEpoch
};
using ProgressCallback = std::function<void(const Progress&)>;

// Set from any thread; the training loop checks it between batches and returns CANCELLED.
struct CancelFlag {
  std::atomic<bool> cancelled{false};
  void Cancel() { cancelled.store(true, std::memory_order_relaxed); }
  bool IsCancelled() const { return cancelled.load(std::memory_order_relaxed); }
};

struct TrainResult {
  std::vector<EpochStats> epochs;
  double best_validation_accuracy = 0;
  int best_epoch = 0;                  // 1-based epoch of best_validation_accuracy (first if tied)
  double seconds = 0;                  // wall time of the whole run
  double train_images_per_second = 0;  // training images processed / training time
  std::optional<ModelWeights> best_weights;  // when keep_best_weights
};

// Trains `arch` on data[split.train] and scores on data[split.validation] after every epoch.
// The NanoNAS score of a candidate is best_validation_accuracy with the defaults (3 epochs, Adam
// 1e-3, batch 16). Same seed and threads give identical results.
// Errors: INVALID_ARGUMENT (data shape/classes do not match arch, empty split, bad options),
// CANCELLED (cancel flag), INTERNAL (oneDNN failure, with its message).
absl::StatusOr<TrainResult> Evaluate(const Architecture& arch, const Dataset& data,
                                     const Split& split, const TrainOptions& options,
                                     const ProgressCallback& progress = nullptr,
                                     const CancelFlag* cancel = nullptr);

// The final training: as Evaluate with keep_best_weights forced on (defaults there are 100 epochs,
// Adam 0.01, batch 128; the caller passes them), returning the weights of the best validation
// epoch.
absl::StatusOr<TrainResult> Train(const Architecture& arch, const Dataset& data, const Split& split,
                                  TrainOptions options, const ProgressCallback& progress = nullptr,
                                  const CancelFlag* cancel = nullptr);

// Float inference (BatchNorm with moving statistics, no dropout): predicted class per index.
absl::StatusOr<std::vector<int32_t>> Predict(const Architecture& arch, const ModelWeights& weights,
                                             const Dataset& data,
                                             const std::vector<int64_t>& indices, int threads = 1);

// Float inference: class probabilities (N, classes), softmax output, for given indices.
absl::StatusOr<std::vector<float>> PredictProbabilities(const Architecture& arch,
                                                        const ModelWeights& weights,
                                                        const Dataset& data,
                                                        const std::vector<int64_t>& indices,
                                                        int threads = 1);

// Kept for callers not yet switched (worker/eval_main.cc): forwards to the resource model's pure
// estimate, EstimateHostTrainingBytes (common/resources/host_memory.h), with the options' batch
// size and threads. New code calls that directly.
int64_t EstimateTrainingMemoryBytes(const Architecture& arch, int64_t dataset_bytes,
                                    const TrainOptions& options);

}  // namespace nanonas

#endif  // NANONAS_WORKER_ENGINE_TRAINER_H_
