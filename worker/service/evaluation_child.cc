#include "worker/service/evaluation_child.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <numeric>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/arch/architecture.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/base/units.h"
#include "common/export/export_model.h"
#include "common/export/inference.h"
#include "common/export/quantize.h"
#include "common/export/tflite_writer.h"
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

double AccuracyOf(const std::vector<int32_t>& predicted, const Dataset& data,
                  const std::vector<int64_t>& indices) {
  int64_t right = 0;
  for (size_t i = 0; i < indices.size() && i < predicted.size(); ++i) {
    right += predicted[i] == data.labels[static_cast<size_t>(indices[i])];
  }
  return indices.empty() ? 0 : static_cast<double>(right) / static_cast<double>(indices.size());
}

// Quantizes the final training's best weights to the full-integer uint8 model, serialises it and
// scores it: quantized validation accuracy, and float and quantized test accuracy with a test set.
absl::Status ExportFinal(const Architecture& arch, const ModelWeights& weights,
                         const Dataset& data, const Split& split, const Dataset* test,
                         uint64_t seed, EvaluateResult* r) {
  if (static_cast<int64_t>(split.train.size()) < kMinRepresentativeImages) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization calibrates on at least ", kMinRepresentativeImages,
        " training images but the training split has only ", split.train.size(),
        ": give more images or a smaller validation split"));
  }
  // A seeded shuffle of the training images: the representative set covers every class.
  std::vector<int64_t> representative = split.train;
  std::mt19937_64 rng(seed);
  std::shuffle(representative.begin(), representative.end(), rng);
  NANONAS_ASSIGN_OR_RETURN(ExportedModel model,
                           ExportModel(arch, weights, data, representative, "nanonas_model"));
  NANONAS_ASSIGN_OR_RETURN(int64_t predicted, PredictFlashBytes(arch));
  if (static_cast<int64_t>(model.tflite.size()) != predicted) {
    return absl::InternalError(absl::StrCat("the exported model.tflite is ", model.tflite.size(),
                                            " bytes but the predicted Flash is ", predicted,
                                            "; this is a bug in nanonas"));
  }
  if (!split.validation.empty()) {
    NANONAS_ASSIGN_OR_RETURN(double qval, QuantizedAccuracy(model.graph, data, split.validation));
    r->set_quantized_validation_accuracy(qval);
  }
  if (test != nullptr) {
    std::vector<int64_t> all(static_cast<size_t>(test->size()));
    std::iota(all.begin(), all.end(), int64_t{0});
    NANONAS_ASSIGN_OR_RETURN(std::vector<int32_t> p, Predict(arch, weights, *test, all, 1));
    r->set_float_test_accuracy(AccuracyOf(p, *test, all));
    NANONAS_ASSIGN_OR_RETURN(double qtest, QuantizedAccuracy(model.graph, *test, all));
    r->set_quantized_test_accuracy(qtest);
    r->set_has_test_accuracy(true);
    r->set_test_images(static_cast<int64_t>(all.size()));
  }
  r->set_tflite(std::move(model.tflite));
  return absl::OkStatus();
}

}  // namespace

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

  const auto& s = request.settings();
  TrainOptions options;
  options.threads = 1;
  if (request.final_training()) {
    const auto& f = request.final_settings();
    options.epochs = f.epochs() > 0 ? f.epochs() : 100;
    options.learning_rate = f.learning_rate() > 0 ? f.learning_rate() : 0.01f;
    options.batch_size = f.batch_size() > 0 ? f.batch_size() : 128;
  } else {
    options.epochs = s.epochs() > 0 ? s.epochs() : 3;
    options.learning_rate = s.learning_rate() > 0 ? s.learning_rate() : 1e-3f;
    options.batch_size = s.batch_size() > 0 ? s.batch_size() : 16;
  }
  options.seed = s.seed() > 0 ? s.seed() : 1;

  // The engine's estimate assumes a process baseline of kEngineBaselineBytes (trainer.cc); this
  // child is the worker binary, whose baseline is larger (gRPC, OpenCV and oneDNN pages mapped:
  // ~58 MiB measured here, 45 MiB of it file-backed). Add the difference, measured now, minus the
  // dataset already counted in the estimate, so that the refusal matches the RSS watchdog.
  constexpr int64_t kEngineBaselineBytes = 32LL << 20;
  const int64_t pixels = static_cast<int64_t>(data->images.size()) +
                         (data == &dataset ? 0 : static_cast<int64_t>(dataset.images.size()));
  const int64_t extra_baseline =
      std::max<int64_t>(0, OwnRssBytes() - pixels - kEngineBaselineBytes);
  const int64_t estimate =
      EstimateHostTrainingBytes(*arch, static_cast<int64_t>(data->images.size()),
                                HostTrainingOptions{options.batch_size, options.threads}) +
      extra_baseline;
  NANONAS_LOG(DEBUG) << "evaluation child: k=" << spec.k << " c=" << spec.c << ", RSS "
                     << FormatBytes(OwnRssBytes()) << " before training, estimated peak "
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

  auto on_progress = [&](const Progress& p) {
    EvaluateEvent e;
    if (p.kind == Progress::Kind::kEpoch) {
      FillEpoch(p.epoch_stats, e.mutable_epoch());
    } else {
      auto* pr = e.mutable_progress();
      pr->set_k(request.k());
      pr->set_c(request.c());
      pr->set_epoch(p.epoch);
      pr->set_epochs(options.epochs);
      pr->set_batch(p.batch);
      pr->set_batches_per_epoch(p.batches_per_epoch);
      pr->set_running_loss(p.running_loss);
      pr->set_running_accuracy(p.running_accuracy);
      pr->set_final_training(request.final_training());
    }
    emit(e);
  };
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
    const Dataset* test = test_dataset;
    Dataset test_resized;
    if (test != nullptr && !(test->shape == shape)) {
      auto t = ResizeDataset(*test, shape);
      if (!t.ok()) return Failed(absl::StrCat("resizing the test set: ", t.status().message()));
      test_resized = std::move(*t);
      test = &test_resized;
    }
    if (test != nullptr && test->num_classes() != data->num_classes()) {
      return Failed(absl::StrCat("the test set has ", test->num_classes(),
                                 " classes but the training set ", data->num_classes()));
    }
    absl::Status exported =
        ExportFinal(*arch, *trained->best_weights, *data, *split, test, options.seed, &r);
    if (!exported.ok()) {
      return Failed(absl::StrCat("quantization and export: ", exported.ToString()));
    }
    r.set_weights(SerializeModelWeights(*trained->best_weights));
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
  EvaluateResult result;
  std::ifstream in(dataset_path, std::ios::binary);
  if (dataset_path.empty() || !in) {
    result = Failed(absl::StrCat("cannot read the dataset file '", dataset_path, "'"));
  } else {
    absl::StatusOr<Dataset> dataset;
    {
      // The serialized bytes are freed before training: only the decoded dataset stays resident.
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      dataset = DeserializeDataset(bytes);
    }
    absl::StatusOr<Dataset> test = absl::NotFoundError("no test set");
    if (!test_path.empty()) {
      std::ifstream tin(test_path, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(tin)), std::istreambuf_iterator<char>());
      test = tin || !bytes.empty() ? DeserializeDataset(bytes)
                                   : absl::StatusOr<Dataset>(absl::NotFoundError(test_path));
    }
    if (!dataset.ok()) {
      result = Failed(absl::StrCat("dataset: ", dataset.status().message()));
    } else if (!test_path.empty() && !test.ok()) {
      result = Failed(absl::StrCat("test set: ", test.status().message()));
    } else {
      result = EvaluateCandidate(request, *dataset, memory_limit, emit,
                                 test_path.empty() ? nullptr : &*test);
    }
  }
  result.set_peak_memory_bytes(OwnPeakRssBytes());
  EvaluateEvent last;
  *last.mutable_result() = result;
  return WriteFrame(STDOUT_FILENO, last).ok() ? 0 : 3;
}

}  // namespace nanonas
