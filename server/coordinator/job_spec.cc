#include "server/coordinator/job_spec.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/export/quantize.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

// Input shape and colour mode (channels default from the colour mode and vice versa).
absl::Status NormalizeInput(v1::JobSpec& spec) {
  const auto& in_shape = spec.input();
  if (in_shape.height() <= 0 || in_shape.width() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.input ", in_shape.height(), "x", in_shape.width(),
                     " is empty: give a positive height and width, e.g. 50x50x3"));
  }
  if (in_shape.height() > kMaxInputSide || in_shape.width() > kMaxInputSide) {
    return absl::InvalidArgumentError(absl::StrCat("spec.input ", in_shape.height(), "x",
                                                   in_shape.width(), " is too large (at most ",
                                                   kMaxInputSide, "x", kMaxInputSide, ")"));
  }
  int channels = in_shape.channels();
  if (channels == 0) {
    channels = spec.color_mode() == v1::COLOR_MODE_GRAYSCALE ? 1 : 3;
    spec.mutable_input()->set_channels(channels);
  }
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.input.channels is ", channels, ": use 1 (grayscale) or 3 (RGB)"));
  }
  if (spec.color_mode() == v1::COLOR_MODE_UNSPECIFIED) {
    spec.set_color_mode(channels == 1 ? v1::COLOR_MODE_GRAYSCALE : v1::COLOR_MODE_RGB);
  } else if ((spec.color_mode() == v1::COLOR_MODE_GRAYSCALE) != (channels == 1)) {
    return absl::InvalidArgumentError(absl::StrCat("spec.color_mode ",
                                                   v1::ColorMode_Name(spec.color_mode()),
                                                   " contradicts ", channels, " input channels"));
  }
  return absl::OkStatus();
}

absl::Status CheckConstraints(const v1::Constraints& lim) {
  const std::pair<const char*, int64_t> limits[] = {{"ram_bytes", lim.ram_bytes()},
                                                    {"flash_bytes", lim.flash_bytes()},
                                                    {"macc", lim.macc()},
                                                    {"host_memory_bytes", lim.host_memory_bytes()}};
  for (const auto& [name, value] : limits) {
    if (value < 0) {
      return absl::InvalidArgumentError(absl::StrCat("spec.constraints.", name, " is ", value,
                                                     ": limits must be positive (0 = no limit)"));
    }
  }
  if (lim.ram_bytes() == 0 && lim.flash_bytes() == 0) {
    return absl::InvalidArgumentError(
        "spec.constraints: set ram_bytes and/or flash_bytes (the microcontroller's RAM and Flash); "
        "without them every candidate fits and the search is meaningless");
  }
  return absl::OkStatus();
}

// A learning rate and batch size that train: finite, positive and not absurd (NaN or 1e30 trained
// a model at chance accuracy that then SUCCEEDED). 0 = the default, checked by the caller.
absl::Status CheckTrainingNumbers(const char* where, double learning_rate, int batch_size) {
  if (!std::isfinite(learning_rate) || learning_rate > kMaxLearningRate) {
    return absl::InvalidArgumentError(absl::StrCat("spec.", where, ".learning_rate is ",
                                                   learning_rate, ": give a number in (0, ",
                                                   kMaxLearningRate, "] (0 = the default)"));
  }
  if (batch_size > kMaxBatchSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.", where, ".batch_size is ", batch_size, ": at most ", kMaxBatchSize));
  }
  return absl::OkStatus();
}

absl::Status CheckName(const std::string& name) {
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.name is ", name.size(), " bytes long: at most ", kMaxNameBytes));
  }
  for (char ch : name) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.name contains the control character 0x", absl::Hex(u, absl::kZeroPad2),
          ": give a name of printable characters (it goes into lists, file names and model.h)"));
    }
  }
  return absl::OkStatus();
}

absl::Status NormalizeEvaluation(v1::EvaluationSettings* ev) {
  if (ev->epochs() < 0 || ev->batch_size() < 0 || ev->learning_rate() < 0) {
    return absl::InvalidArgumentError(
        "spec.evaluation: epochs, batch_size and learning_rate must not be negative");
  }
  NANONAS_RETURN_IF_ERROR(
      CheckTrainingNumbers("evaluation", ev->learning_rate(), ev->batch_size()));
  if (ev->epochs() == 0) ev->set_epochs(kDefaultEpochs);
  if (ev->batch_size() == 0) ev->set_batch_size(kDefaultBatchSize);
  if (ev->learning_rate() == 0) ev->set_learning_rate(kDefaultLearningRate);
  if (ev->seed() == 0) ev->set_seed(kDefaultSeed);
  if (ev->epochs() > kMaxEpochs) {
    return absl::InvalidArgumentError(absl::StrCat("spec.evaluation.epochs is above ", kMaxEpochs));
  }
  return absl::OkStatus();
}

absl::Status NormalizeFinalTraining(v1::FinalTrainingSettings* ft) {
  if (ft->epochs() < 0 || ft->batch_size() < 0 || ft->learning_rate() < 0) {
    return absl::InvalidArgumentError(
        "spec.final_training: epochs, batch_size and learning_rate must not be negative");
  }
  NANONAS_RETURN_IF_ERROR(
      CheckTrainingNumbers("final_training", ft->learning_rate(), ft->batch_size()));
  if (ft->epochs() == 0) ft->set_epochs(kDefaultFinalEpochs);
  if (ft->batch_size() == 0) ft->set_batch_size(kDefaultFinalBatchSize);
  if (ft->learning_rate() == 0) ft->set_learning_rate(kDefaultFinalLearningRate);
  if (ft->epochs() > kMaxFinalEpochs) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.final_training.epochs is above ", kMaxFinalEpochs));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::JobSpec> NormalizeSpec(const v1::JobSpec& in) {
  v1::JobSpec spec = in;
  if (spec.dataset_id().empty()) {
    return absl::InvalidArgumentError(
        "spec.dataset_id is empty: upload a dataset (UploadDataset) or register a server path "
        "(RegisterDatasetPath) and pass its id");
  }
  NANONAS_RETURN_IF_ERROR(CheckName(spec.name()));
  NANONAS_RETURN_IF_ERROR(NormalizeInput(spec));
  if (spec.validation_split() == 0) spec.set_validation_split(kDefaultValidationSplit);
  if (!(spec.validation_split() > 0 && spec.validation_split() < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.validation_split is ", spec.validation_split(),
        ": give a fraction strictly between 0 and 1 (default ", kDefaultValidationSplit, ")"));
  }
  NANONAS_RETURN_IF_ERROR(CheckConstraints(spec.constraints()));
  const std::string variant = spec.variant().empty() ? kDefaultVariant : spec.variant();
  auto parsed = ParseVariant(variant);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.variant '", spec.variant(), "' is unknown: use \"2023\" (default) or \"2024\""));
  }
  spec.set_variant(VariantName(*parsed));
  NANONAS_RETURN_IF_ERROR(NormalizeEvaluation(spec.mutable_evaluation()));
  NANONAS_RETURN_IF_ERROR(NormalizeFinalTraining(spec.mutable_final_training()));
  return spec;
}

absl::Status CheckTestClasses(const std::vector<std::string>& train,
                              const std::vector<std::string>& test) {
  if (test == train) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the test set's classes [", absl::StrJoin(test, ", "), "] differ from the training set's [",
      absl::StrJoin(train, ", "), "]: give the test folder the same class folders"));
}

absl::Status CheckCalibrationImages(const v1::JobSpec& spec, int64_t n) {
  if (spec.final_training().skip()) return absl::OkStatus();
  int64_t n_val =
      static_cast<int64_t>(std::floor(static_cast<double>(n) * spec.validation_split()));
  n_val = std::max<int64_t>(n_val, 1);
  if (n - n_val >= kMinRepresentativeImages) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "the final training's quantization calibrates on at least ", kMinRepresentativeImages,
      " training images, but dataset ", spec.dataset_id(), " leaves ", n - n_val, " for training (",
      n, " images, validation split ", spec.validation_split(),
      "): give more images, a smaller validation split, or skip the final training"));
}

NanoNasSearch::Options SearchOptionsOf(const v1::Job& job) {
  NanoNasSearch::Options o;
  o.input.height = job.spec().input().height();
  o.input.width = job.spec().input().width();
  o.input.channels = job.spec().input().channels();
  o.classes = job.num_classes();
  auto variant = ParseVariant(job.spec().variant());
  o.variant = variant.ok() ? *variant : Variant::k2023;
  return o;
}

absl::StatusOr<Architecture> ArchitectureOf(const v1::Job& job, int k, int c) {
  CandidateSpec cs;
  cs.k = k;
  cs.c = c;
  cs.input.height = job.spec().input().height();
  cs.input.width = job.spec().input().width();
  cs.input.channels = job.spec().input().channels();
  cs.classes = job.num_classes();
  NANONAS_ASSIGN_OR_RETURN(cs.variant, ParseVariant(job.spec().variant()));
  return BuildArchitecture(cs);
}

}  // namespace nanonas::coordinator
