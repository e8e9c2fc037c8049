#include "worker/service/evaluation_child.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/api/defaults.h"
#include "common/arch/architecture.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/base/units.h"
#include "common/data/mapped.h"
#include "common/export/finalize.h"
#include "common/resources/host_memory.h"
#include "worker/engine/trainer.h"
#include "worker/service/child_protocol.h"
#include "worker/service/weights_codec.h"

namespace nanonas {
namespace {

using nanonas::v1::EvaluateEvent;
using nanonas::v1::EvaluateRequest;
using nanonas::v1::EvaluateResult;

void FillEpoch(const EpochStats& s, nanonas::v1::EpochResult* out) {
  out->set_epoch(s.epoch);
  out->set_train_loss(s.train_loss);
  out->set_train_accuracy(s.train_accuracy);
  out->set_validation_loss(s.validation_loss);
  out->set_validation_accuracy(s.validation_accuracy);
  out->set_seconds(s.seconds);
}

EvaluateResult Failed(const std::string& why) {
  EvaluateResult r;
  r.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
  r.set_error(why);
  return r;
}

// The event for a training progress report: an epoch's figures or a batch's running figures.
EvaluateEvent ProgressEvent(const EvaluateRequest& request, int epochs, const Progress& p) {
  EvaluateEvent e;
  if (p.kind == Progress::Kind::kEpoch) {
    FillEpoch(p.epoch_stats, e.mutable_epoch());
    return e;
  }
  auto* pr = e.mutable_progress();
  pr->set_k(request.k());
  pr->set_c(request.c());
  pr->set_epoch(p.epoch);
  pr->set_epochs(epochs);
  pr->set_batch(p.batch);
  pr->set_batches_per_epoch(p.batches_per_epoch);
  pr->set_running_loss(p.running_loss);
  pr->set_running_accuracy(p.running_accuracy);
  pr->set_final_training(request.final_training());
  return e;
}

TrainOptions TrainOptionsFor(const EvaluateRequest& request) {
  const auto& s = request.settings();
  TrainOptions options;
  options.threads = std::max(1, request.threads());  // the runner grants this many slots
  if (request.final_training()) {
    const auto& f = request.final_settings();
    options.epochs = f.epochs() > 0 ? f.epochs() : defaults::kFinalEpochs;
    options.learning_rate =
        f.learning_rate() > 0 ? f.learning_rate() : defaults::kFinalLearningRate;
    options.batch_size = f.batch_size() > 0 ? f.batch_size() : defaults::kFinalBatchSize;
  } else {
    options.epochs = s.epochs() > 0 ? s.epochs() : defaults::kEpochs;
    options.learning_rate = s.learning_rate() > 0 ? s.learning_rate() : defaults::kLearningRate;
    options.batch_size = s.batch_size() > 0 ? s.batch_size() : defaults::kBatchSize;
  }
  options.seed = s.seed() > 0 ? s.seed() : defaults::kSeed;
  return options;
}

// The final training's last step: the test set at the model's input, then FinalizeModel (the
// quantized model, shared with nanonas-eval) on the best weights; fills r's model and figures.
// Returns the error text, "" on success.
std::string FinalizeInto(const Architecture& arch, const ModelWeights& weights, const Dataset& data,
                         const Split& split, const Dataset* test, const TrainOptions& train,
                         EvaluateResult* r) {
  const uint64_t seed = train.seed;
  Dataset test_resized;
  if (test != nullptr && !(test->shape == arch.spec.input)) {
    auto t = ResizeDataset(*test, arch.spec.input);
    if (!t.ok()) return absl::StrCat("resizing the test set: ", t.status().message());
    test_resized = std::move(*t);
    test = &test_resized;
  }
  if (test != nullptr && test->num_classes() != data.num_classes()) {
    return absl::StrCat("the test set has ", test->num_classes(), " classes but the training set ",
                        data.num_classes());
  }
  FinalizeOptions options;
  options.float_predict = [&](const Dataset& d, const std::vector<int64_t>& indices) {
    return Predict(arch, weights, d, indices, train.threads);
  };
  absl::StatusOr<FinalizedModel> model =
      FinalizeModel(arch, weights, data, split, test, seed, options);
  if (!model.ok()) return absl::StrCat("quantization and export: ", model.status().ToString());
  if (!split.validation.empty()) {
    r->set_quantized_validation_accuracy(model->quantized_validation_accuracy);
  }
  if (model->has_test) {
    r->set_float_test_accuracy(model->float_test_accuracy);
    r->set_quantized_test_accuracy(model->quantized_test_accuracy);
    r->set_has_test_accuracy(true);
    r->set_test_images(model->test_images);
  }
  r->set_tflite(std::move(model->tflite));
  r->set_weights(SerializeModelWeights(weights));
  return "";
}

// EvaluateCandidate on the dataset files the child was given (test_path "" = no test set).
EvaluateResult EvaluateFiles(const EvaluateRequest& request, const std::string& dataset_path,
                             const std::string& test_path, int64_t memory_limit,
                             const std::function<void(const EvaluateEvent&)>& emit) {
  // The files are the worker cache's, verified against their content hash when fetched: mapped
  // without a second checksum pass, pixels shared with the other children (mapped.h).
  absl::StatusOr<Dataset> dataset = MapDatasetFile(dataset_path, /*verify_checksum=*/false);
  if (absl::IsNotFound(dataset.status())) {
    return Failed(absl::StrCat("cannot read the dataset file '", dataset_path, "'"));
  }
  if (!dataset.ok()) return Failed(absl::StrCat("dataset: ", dataset.status().message()));
  if (test_path.empty()) return EvaluateCandidate(request, *dataset, memory_limit, emit);
  absl::StatusOr<Dataset> test = MapDatasetFile(test_path, /*verify_checksum=*/false);
  if (!test.ok()) return Failed(absl::StrCat("test set: ", test.status().message()));
  return EvaluateCandidate(request, *dataset, memory_limit, emit, &*test);
}

}  // namespace

int64_t EstimateChildAnonymousBytes(const Architecture& arch, const Dataset& dataset,
                                    const Dataset& data, const TrainOptions& options) {
  constexpr int64_t kEngineBaselineBytes = 32LL << 20;
  const bool resized = &data != &dataset;
  const int64_t original_owned = resized ? static_cast<int64_t>(dataset.images.size()) : 0;
  const int64_t owned = static_cast<int64_t>(data.images.size()) + original_owned;
  const int64_t extra_baseline =
      std::max<int64_t>(0, OwnRssAnonBytes() - owned - kEngineBaselineBytes);
  HostTrainingOptions host{options.batch_size, options.threads};
  host.dataset_mapped = data.images.empty() && data.view != nullptr;
  return EstimateHostTrainingBytes(arch, data.pixel_bytes(), host) + original_owned +
         extra_baseline;
}

EvaluateResult EvaluateCandidate(const EvaluateRequest& request, const Dataset& dataset,
                                 int64_t memory_limit,
                                 const std::function<void(const EvaluateEvent&)>& emit,
                                 const Dataset* test_dataset) {
  InputShape shape{request.input().height(), request.input().width(), request.input().channels()};
  const Dataset* data = &dataset;
  Dataset resized;
  if (!(dataset.shape == shape)) {
    auto r = ResizeDataset(dataset, shape);
    if (!r.ok()) return Failed(absl::StrCat("resizing the dataset: ", r.status().message()));
    resized = std::move(*r);
    data = &resized;
  }
  auto variant = ParseVariant(request.variant().empty() ? "2023" : request.variant());
  if (!variant.ok()) return Failed(std::string(variant.status().message()));
  CandidateSpec spec;
  spec.k = request.k();
  spec.c = request.c();
  spec.input = shape;
  spec.classes = data->num_classes();
  spec.variant = *variant;
  auto arch = BuildArchitecture(spec);
  if (!arch.ok()) return Failed(std::string(arch.status().message()));

  TrainOptions options = TrainOptionsFor(request);

  const int64_t estimate = EstimateChildAnonymousBytes(*arch, dataset, *data, options);
  NANONAS_LOG(DEBUG) << "evaluation child: k=" << spec.k << " c=" << spec.c << ", RSS "
                     << FormatBytes(OwnRssBytes()) << " (anonymous "
                     << FormatBytes(OwnRssAnonBytes()) << ") before training, estimated peak "
                     << FormatBytes(estimate) << ", limit " << FormatBytes(memory_limit);
  if (memory_limit > 0 && estimate > memory_limit) {
    EvaluateResult r;
    r.set_state(nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE);
    r.set_error(absl::StrCat("estimated training memory ", FormatBytes(estimate),
                             " exceeds the budget ", FormatBytes(memory_limit)));
    return r;
  }
  const double split_fraction = request.validation_split() > 0 ? request.validation_split() : 0.3;
  auto split = SplitTrainValidation(*data, split_fraction, options.seed);
  if (!split.ok()) return Failed(std::string(split.status().message()));

  // About 20 progress events per epoch, whatever the dataset size.
  const int64_t batches =
      (static_cast<int64_t>(split->train.size()) + options.batch_size - 1) / options.batch_size;
  options.progress_every_batches = static_cast<int>(std::max<int64_t>(1, batches / 20));

  auto on_progress = [&](const Progress& p) { emit(ProgressEvent(request, options.epochs, p)); };
  absl::StatusOr<TrainResult> trained = request.final_training()
                                            ? Train(*arch, *data, *split, options, on_progress)
                                            : Evaluate(*arch, *data, *split, options, on_progress);
  if (!trained.ok()) return Failed(std::string(trained.status().message()));
  EvaluateResult r;
  r.set_state(nanonas::v1::CANDIDATE_STATE_DONE);
  for (const EpochStats& e : trained->epochs) FillEpoch(e, r.add_epochs());
  r.set_best_validation_accuracy(trained->best_validation_accuracy);
  r.set_best_epoch(trained->best_epoch);
  r.set_train_images_per_second(trained->train_images_per_second);
  if (request.final_training()) {
    if (!trained->best_weights.has_value()) return Failed("the final training kept no weights");
    const std::string error =
        FinalizeInto(*arch, *trained->best_weights, *data, *split, test_dataset, options, &r);
    if (!error.empty()) return Failed(error);
  }
  return r;
}

int EvaluationChildMain(int argc, char** argv) {
  std::string dataset_path;
  std::string test_path;
  int64_t memory_limit = 0;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dataset-file" && i + 1 < argc) {
      dataset_path = argv[++i];
    } else if (a == "--test-dataset-file" && i + 1 < argc) {
      test_path = argv[++i];
    } else if (a == "--memory-limit" && i + 1 < argc) {
      if (!absl::SimpleAtoi(argv[++i], &memory_limit)) {
        NANONAS_LOG(ERROR) << "evaluation child: bad --memory-limit " << argv[i];
        return 2;
      }
    }
  }
  EvaluateRequest request;
  auto got = ReadFrame(STDIN_FILENO, &request);
  if (!got.ok() || !*got) {
    NANONAS_LOG(ERROR) << "evaluation child: no request on stdin";
    return 2;
  }
  auto emit = [](const EvaluateEvent& e) { (void)WriteFrame(STDOUT_FILENO, e); };
  EvaluateResult result = EvaluateFiles(request, dataset_path, test_path, memory_limit, emit);
  result.set_peak_memory_bytes(OwnPeakRssBytes());
  // A last sample of the anonymous memory; the runner keeps the highest of its polls and this.
  result.set_peak_anonymous_bytes(OwnRssAnonBytes());
  EvaluateEvent last;
  *last.mutable_result() = result;
  return WriteFrame(STDOUT_FILENO, last).ok() ? 0 : 3;
}

}  // namespace nanonas
