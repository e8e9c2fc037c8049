#include "worker/service/evaluation_child.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/arch/architecture.h"
#include "common/base/log.h"
#include "common/base/units.h"
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

}  // namespace

EvaluateResult EvaluateCandidate(const EvaluateRequest& request, const Dataset& dataset,
                                 int64_t memory_limit,
                                 const std::function<void(const EvaluateEvent&)>& emit) {
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
      EstimateTrainingMemoryBytes(*arch, static_cast<int64_t>(data->images.size()), options) +
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
  if (request.final_training() && trained->best_weights.has_value()) {
    r.set_weights(SerializeModelWeights(*trained->best_weights));
  }
  return r;
}

int EvaluationChildMain(int argc, char** argv) {
  std::string dataset_path;
  int64_t memory_limit = 0;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--dataset-file" && i + 1 < argc) {
      dataset_path = argv[++i];
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
    if (!dataset.ok()) {
      result = Failed(absl::StrCat("dataset: ", dataset.status().message()));
    } else {
      result = EvaluateCandidate(request, *dataset, memory_limit, emit);
    }
  }
  result.set_peak_memory_bytes(OwnPeakRssBytes());
  EvaluateEvent last;
  *last.mutable_result() = result;
  return WriteFrame(STDOUT_FILENO, last).ok() ? 0 : 3;
}

}  // namespace nanonas
