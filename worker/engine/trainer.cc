#include "worker/engine/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/resources/host_memory.h"
#include "worker/engine/network.h"
#include "worker/engine/omp_threads.h"
#include "worker/engine/rng.h"

namespace nanonas {
namespace {

using engine::Network;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kShuffleStream = 1000;
// Predict() batches like training: the convolutions' tensors stay in L2 (batch 64 made them about
// 2x slower per image); measured Predict() img/s, 1 thread, 64 -> 16: (16,3)@50x50x3 4032 -> 5386,
// (16,3)@28x28x1 10501 -> 12421, (4,2)@50x50x3 10818 -> 12079 (medians of 3 alternating runs).
constexpr int kInferenceBatch = 16;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

using engine::ScopedOmpThreads;

absl::Status CheckData(const Architecture& arch, const Dataset& data, bool need_labels) {
  if (!(data.shape == arch.spec.input)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset images are ", FormatInputShape(data.shape),
                     " but the architecture expects ", FormatInputShape(arch.spec.input)));
  }
  if (data.pixel_bytes() != data.size() * data.image_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("dataset holds ", data.pixel_bytes(),
                                                   " pixel bytes for ", data.size(), " images of ",
                                                   data.image_bytes(), " bytes"));
  }
  if (need_labels && data.num_classes() != arch.spec.classes) {
    return absl::InvalidArgumentError(absl::StrCat("dataset has ", data.num_classes(),
                                                   " classes but the architecture has ",
                                                   arch.spec.classes, " outputs"));
  }
  return absl::OkStatus();
}

absl::Status CheckIndices(const Dataset& data, const std::vector<int64_t>& indices,
                          const char* what, bool need_labels, int classes) {
  for (int64_t i : indices) {
    if (i < 0 || i >= data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " index ", i, " is outside the dataset of ", data.size(), " images"));
    }
    if (need_labels && (data.labels[i] < 0 || data.labels[i] >= classes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("label ", data.labels[i], " of image ", i, " is outside 0..", classes - 1));
    }
  }
  return absl::OkStatus();
}

// Batch sizes used to cover `count` items in batches of `batch` (full and last partial).
void AddBatchSizes(int64_t count, int batch, std::vector<int>* sizes) {
  if (count <= 0) return;
  sizes->push_back(static_cast<int>(std::min<int64_t>(batch, count)));
  if (count > batch && count % batch != 0) sizes->push_back(static_cast<int>(count % batch));
}

absl::Status CheckTrainingRequest(const Architecture& arch, const Dataset& data, const Split& split,
                                  const TrainOptions& options) {
  NANONAS_RETURN_IF_ERROR(CheckData(arch, data, true));
  if (split.train.empty() || split.validation.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the split needs training and validation images (got ", split.train.size(),
                     " and ", split.validation.size(), ")"));
  }
  if (options.epochs < 1 || options.batch_size < 1 || options.threads < 1 ||
      options.progress_every_batches < 0 || !(options.learning_rate > 0) ||
      !std::isfinite(options.learning_rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad training options: epochs ", options.epochs, ", batch size ",
                     options.batch_size, ", threads ", options.threads, ", learning rate ",
                     options.learning_rate, ", progress every ", options.progress_every_batches,
                     " (need epochs, batch size, threads >= 1, a positive learning rate)"));
  }
  NANONAS_RETURN_IF_ERROR(CheckIndices(data, split.train, "training", true, arch.spec.classes));
  return CheckIndices(data, split.validation, "validation", true, arch.spec.classes);
}

// Summed loss and argmax hits over the images of one pass over a set.
struct PassSums {
  double loss = 0;
  int64_t correct = 0;
};

// Loads the n images at `indices` and their labels (into `labels`), runs the forward pass and the
// loss, and adds them to `sums`.
absl::Status ForwardBatch(Network& net, const Dataset& data, const int64_t* indices, int n,
                          bool training, std::vector<int32_t>& labels, PassSums* sums) {
  for (int j = 0; j < n; ++j) labels[j] = data.labels[indices[j]];
  net.LoadImages(data, indices, n);
  NANONAS_RETURN_IF_ERROR(net.Forward(n, training));
  int correct = 0;
  sums->loss += net.Loss(n, labels.data(), &correct);
  sums->correct += correct;
  return absl::OkStatus();
}

// One training epoch: shuffles `order` (the training indices, in place) with the epoch's seed and
// runs Forward/Loss/Backward/AdamStep per batch, reporting kBatch progress. CANCELLED when
// `cancel` is set between batches. `labels` holds a batch.
absl::StatusOr<PassSums> TrainEpoch(Network& net, const Dataset& data, const TrainOptions& options,
                                    int epoch, std::vector<int64_t>& order,
                                    std::vector<int32_t>& labels, const ProgressCallback& progress,
                                    const CancelFlag* cancel) {
  const int batch = options.batch_size;
  const int64_t n_train = static_cast<int64_t>(order.size());
  const int64_t batches_per_epoch = (n_train + batch - 1) / batch;
  engine::Rng rng(engine::DeriveSeed(options.seed, kShuffleStream + epoch));
  for (int64_t i = n_train - 1; i > 0; --i) {
    std::swap(order[i], order[rng.Below(static_cast<uint64_t>(i) + 1)]);
  }
  PassSums sums;
  int64_t seen = 0;
  for (int64_t b = 0; b < batches_per_epoch; ++b) {
    if (cancel != nullptr && cancel->IsCancelled()) {
      return absl::CancelledError(
          absl::StrCat("training cancelled in epoch ", epoch, " after ", b, " batches"));
    }
    const int64_t first = b * batch;
    const int n = static_cast<int>(std::min<int64_t>(batch, n_train - first));
    NANONAS_RETURN_IF_ERROR(
        ForwardBatch(net, data, order.data() + first, n, /*training=*/true, labels, &sums));
    NANONAS_RETURN_IF_ERROR(net.Backward(n));
    net.AdamStep(options.learning_rate);
    seen += n;
    if (progress && options.progress_every_batches > 0 &&
        (b + 1) % options.progress_every_batches == 0 && b + 1 < batches_per_epoch) {
      Progress p;
      p.kind = Progress::Kind::kBatch;
      p.epoch = epoch;
      p.batch = b + 1;
      p.batches_per_epoch = batches_per_epoch;
      p.running_loss = sums.loss / seen;
      p.running_accuracy = static_cast<double>(sums.correct) / seen;
      progress(p);
    }
  }
  return sums;
}

// Validation (inference mode) over `indices` in batches of `batch`.
absl::StatusOr<PassSums> Validate(Network& net, const Dataset& data,
                                  const std::vector<int64_t>& indices, int batch,
                                  std::vector<int32_t>& labels) {
  const int64_t count = static_cast<int64_t>(indices.size());
  PassSums sums;
  for (int64_t first = 0; first < count; first += batch) {
    const int n = static_cast<int>(std::min<int64_t>(batch, count - first));
    NANONAS_RETURN_IF_ERROR(
        ForwardBatch(net, data, indices.data() + first, n, /*training=*/false, labels, &sums));
  }
  return sums;
}

absl::StatusOr<TrainResult> Run(const Architecture& arch, const Dataset& data, const Split& split,
                                const TrainOptions& options, const ProgressCallback& progress,
                                const CancelFlag* cancel) {
  NANONAS_RETURN_IF_ERROR(CheckTrainingRequest(arch, data, split, options));
  const auto start = Clock::now();
  ScopedOmpThreads threads(options.threads);
  const int batch = options.batch_size;
  const int64_t n_train = static_cast<int64_t>(split.train.size());
  const int64_t n_val = static_cast<int64_t>(split.validation.size());
  std::vector<int> sizes;
  AddBatchSizes(n_train, batch, &sizes);
  AddBatchSizes(n_val, batch, &sizes);
  NANONAS_ASSIGN_OR_RETURN(std::unique_ptr<Network> net, Network::Create(arch, sizes, true));
  net->InitializeKeras(options.seed);

  std::vector<int64_t> order = split.train;
  std::vector<int32_t> labels(batch);
  const int64_t batches_per_epoch = (n_train + batch - 1) / batch;
  TrainResult result;
  double train_seconds = 0;
  int64_t trained_images = 0;
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    NANONAS_ASSIGN_OR_RETURN(const PassSums train, TrainEpoch(*net, data, options, epoch, order,
                                                              labels, progress, cancel));
    train_seconds += Seconds(epoch_start, Clock::now());
    trained_images += n_train;
    NANONAS_ASSIGN_OR_RETURN(const PassSums val,
                             Validate(*net, data, split.validation, batch, labels));

    EpochStats stats;
    stats.epoch = epoch;
    stats.train_loss = train.loss / n_train;
    stats.train_accuracy = static_cast<double>(train.correct) / n_train;
    stats.validation_loss = val.loss / n_val;
    stats.validation_accuracy = static_cast<double>(val.correct) / n_val;
    stats.seconds = Seconds(epoch_start, Clock::now());
    result.epochs.push_back(stats);
    if (epoch == 1 || stats.validation_accuracy > result.best_validation_accuracy) {
      result.best_validation_accuracy = stats.validation_accuracy;
      result.best_epoch = epoch;
      if (options.keep_best_weights) result.best_weights = net->GetWeights();
    }
    if (progress) {
      Progress p;
      p.kind = Progress::Kind::kEpoch;
      p.epoch = epoch;
      p.batch = batches_per_epoch;
      p.batches_per_epoch = batches_per_epoch;
      p.running_loss = stats.train_loss;
      p.running_accuracy = stats.train_accuracy;
      p.epoch_stats = stats;
      progress(p);
    }
  }
  result.seconds = Seconds(start, Clock::now());
  result.train_images_per_second = train_seconds > 0 ? trained_images / train_seconds : 0;
  return result;
}

// Float inference of `indices`: calls sink(first, n, logits) per batch.
template <typename Sink>
absl::Status Infer(const Architecture& arch, const ModelWeights& weights, const Dataset& data,
                   const std::vector<int64_t>& indices, int threads, Sink&& sink) {
  NANONAS_RETURN_IF_ERROR(CheckData(arch, data, false));
  NANONAS_RETURN_IF_ERROR(CheckIndices(data, indices, "inference", false, 0));
  if (threads < 1) return absl::InvalidArgumentError("threads must be >= 1");
  if (indices.empty()) return absl::OkStatus();
  ScopedOmpThreads scoped(threads);
  const int64_t count = static_cast<int64_t>(indices.size());
  std::vector<int> sizes;
  AddBatchSizes(count, kInferenceBatch, &sizes);
  NANONAS_ASSIGN_OR_RETURN(std::unique_ptr<Network> net, Network::Create(arch, sizes, false));
  NANONAS_RETURN_IF_ERROR(net->SetWeights(weights));
  for (int64_t first = 0; first < count; first += kInferenceBatch) {
    const int n = static_cast<int>(std::min<int64_t>(kInferenceBatch, count - first));
    net->LoadImages(data, indices.data() + first, n);
    NANONAS_RETURN_IF_ERROR(net->Forward(n, false));
    sink(first, n, net->logits());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainResult> Evaluate(const Architecture& arch, const Dataset& data,
                                     const Split& split, const TrainOptions& options,
                                     const ProgressCallback& progress, const CancelFlag* cancel) {
  try {
    return Run(arch, data, split, options, progress, cancel);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory training ", DescribeArchitecture(arch)));
  }
}

absl::StatusOr<TrainResult> Train(const Architecture& arch, const Dataset& data, const Split& split,
                                  TrainOptions options, const ProgressCallback& progress,
                                  const CancelFlag* cancel) {
  options.keep_best_weights = true;
  return Evaluate(arch, data, split, options, progress, cancel);
}

absl::StatusOr<std::vector<int32_t>> Predict(const Architecture& arch, const ModelWeights& weights,
                                             const Dataset& data,
                                             const std::vector<int64_t>& indices, int threads) {
  const int k = arch.spec.classes;
  std::vector<int32_t> out(indices.size());
  NANONAS_RETURN_IF_ERROR(
      Infer(arch, weights, data, indices, threads, [&](int64_t first, int n, const float* logits) {
        for (int i = 0; i < n; ++i) {
          const float* l = logits + static_cast<int64_t>(i) * k;
          out[first + i] = static_cast<int32_t>(std::max_element(l, l + k) - l);
        }
      }));
  return out;
}

absl::StatusOr<std::vector<float>> PredictProbabilities(const Architecture& arch,
                                                        const ModelWeights& weights,
                                                        const Dataset& data,
                                                        const std::vector<int64_t>& indices,
                                                        int threads) {
  const int k = arch.spec.classes;
  std::vector<float> out(indices.size() * static_cast<size_t>(k));
  NANONAS_RETURN_IF_ERROR(
      Infer(arch, weights, data, indices, threads, [&](int64_t first, int n, const float* logits) {
        engine::Softmax(logits, n, k, out.data() + first * k);
      }));
  return out;
}

int64_t EstimateTrainingMemoryBytes(const Architecture& arch, int64_t dataset_bytes,
                                    const TrainOptions& options) {
  return EstimateHostTrainingBytes(arch, dataset_bytes,
                                   HostTrainingOptions{options.batch_size, options.threads});
}

}  // namespace nanonas
