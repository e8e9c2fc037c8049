#include "common/export/finalize.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/arch/mcu_model.h"
#include "common/base/status_macros.h"
#include "common/export/c_header.h"
#include "common/export/inference.h"
#include "common/export/tflite_writer.h"

namespace nanonas {
namespace {

double AccuracyOf(const std::vector<int32_t>& predicted, const Dataset& data,
                  const std::vector<int64_t>& indices) {
  int64_t right = 0;
  for (size_t i = 0; i < indices.size() && i < predicted.size(); ++i) {
    right += predicted[i] == data.labels[static_cast<size_t>(indices[i])];
  }
  return indices.empty() ? 0 : static_cast<double>(right) / static_cast<double>(indices.size());
}

// The float predictor's accuracy on `indices`.
absl::StatusOr<double> FloatAccuracyOf(const FloatPredictor& predict, const Dataset& data,
                                       const std::vector<int64_t>& indices) {
  NANONAS_ASSIGN_OR_RETURN(std::vector<int32_t> predicted, predict(data, indices));
  return AccuracyOf(predicted, data, indices);
}

ModelDescription Describe(const Architecture& arch, const FinalizeOptions& options,
                          int64_t ram_bytes) {
  ModelDescription d;
  d.job_id = options.job_id;
  d.name = options.name;
  d.variant = VariantName(arch.spec.variant);
  d.k = arch.spec.k;
  d.c = arch.spec.c;
  d.classes = arch.spec.classes;
  d.input = arch.spec.input;
  d.ram_bytes = ram_bytes;
  return d;
}

// Quantized and float accuracies on the validation split and the test set.
absl::Status Score(const Dataset& data, const Split& split, const Dataset* test,
                   const FinalizeOptions& options, FinalizedModel* m) {
  if (!split.validation.empty()) {
    NANONAS_ASSIGN_OR_RETURN(m->quantized_validation_accuracy,
                             QuantizedAccuracy(m->graph, data, split.validation));
    if (options.float_validation && options.float_predict) {
      NANONAS_ASSIGN_OR_RETURN(m->float_validation_accuracy,
                               FloatAccuracyOf(options.float_predict, data, split.validation));
    }
  }
  if (test == nullptr) return absl::OkStatus();
  std::vector<int64_t> all(static_cast<size_t>(test->size()));
  std::iota(all.begin(), all.end(), int64_t{0});
  m->has_test = true;
  m->test_images = test->size();
  if (options.float_predict) {
    NANONAS_ASSIGN_OR_RETURN(m->float_test_accuracy,
                             FloatAccuracyOf(options.float_predict, *test, all));
  }
  NANONAS_ASSIGN_OR_RETURN(m->quantized_test_accuracy, QuantizedAccuracy(m->graph, *test, all));
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckCalibrationSet(int64_t train_images, int calibration_images) {
  if (calibration_images < kMinRepresentativeImages) {
    return absl::InvalidArgumentError(absl::StrCat("quantization calibrates on at least ",
                                                   kMinRepresentativeImages,
                                                   " training images, not ", calibration_images));
  }
  if (train_images >= calibration_images) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("quantization calibrates on ",
                   calibration_images == kMinRepresentativeImages ? "at least " : "",
                   calibration_images, " training images but the training split has only ",
                   train_images, ": give more images or a smaller validation split"));
}

std::vector<int64_t> CalibrationImages(const std::vector<int64_t>& train, int n, uint64_t seed) {
  // A seeded shuffle of the training images: the calibration set covers every class.
  std::vector<int64_t> shuffled = train;
  std::mt19937_64 rng(seed);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  shuffled.resize(std::min(shuffled.size(), static_cast<size_t>(std::max(n, 0))));
  return shuffled;
}

absl::StatusOr<FinalizedModel> FinalizeModel(const Architecture& arch, const ModelWeights& weights,
                                             const Dataset& data, const Split& split,
                                             const Dataset* test, uint64_t seed,
                                             const FinalizeOptions& options) {
  NANONAS_RETURN_IF_ERROR(
      CheckCalibrationSet(static_cast<int64_t>(split.train.size()), options.calibration_images));
  FinalizedModel m;
  m.calibration_images = options.calibration_images;
  NANONAS_ASSIGN_OR_RETURN(
      m.graph, QuantizeModel(arch, weights, data,
                             CalibrationImages(split.train, options.calibration_images, seed)));
  NANONAS_ASSIGN_OR_RETURN(m.tflite, SerializeTflite(m.graph));
  NANONAS_ASSIGN_OR_RETURN(const int64_t predicted, PredictFlashBytes(arch));
  m.flash_bytes = static_cast<int64_t>(m.tflite.size());
  if (m.flash_bytes != predicted) {
    return absl::InternalError(absl::StrCat("the exported model.tflite is ", m.flash_bytes,
                                            " bytes but the predicted Flash is ", predicted,
                                            "; this is a bug in nanonas"));
  }
  m.ram_bytes = EstimateMcuResources(arch).ram_bytes;
  m.header = ModelHeaderText(m.tflite, Describe(arch, options, m.ram_bytes));
  NANONAS_RETURN_IF_ERROR(Score(data, split, test, options, &m));
  return m;
}

}  // namespace nanonas
