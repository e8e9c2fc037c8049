// The final training's last step, the one path from trained weights to the exported model: the
// worker's evaluation child and nanonas-eval both call FinalizeModel, so the same weights, data
// and seed give the same model.tflite byte for byte. Pure functions of their arguments (the
// float predictor aside); thread-safe.
//
//   FinalizeOptions options;
//   options.float_predict = [&](const Dataset& d, const std::vector<int64_t>& idx) {
//     return Predict(arch, weights, d, idx, /*threads=*/1);  // the engine's float inference
//   };
//   NANONAS_ASSIGN_OR_RETURN(FinalizedModel m,
//       FinalizeModel(arch, weights, data, split, &test, seed, options));
//   // m.tflite -> model.tflite (m.flash_bytes bytes), m.header -> model.h
#ifndef NANONAS_COMMON_EXPORT_FINALIZE_H_
#define NANONAS_COMMON_EXPORT_FINALIZE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"
#include "common/export/graph.h"
#include "common/export/quantize.h"

namespace nanonas {

// The float model's predicted labels for data's images `indices`, in their order (the training
// engine's inference; nanonas_export does not link the engine).
using FloatPredictor = std::function<absl::StatusOr<std::vector<int32_t>>(
    const Dataset& data, const std::vector<int64_t>& indices)>;

struct FinalizeOptions {
  // Training images that calibrate the quantization (>= kMinRepresentativeImages).
  int calibration_images = kMinRepresentativeImages;
  // Float inference of the trained weights, for the float accuracies; without it they stay 0.
  FloatPredictor float_predict;
  // Also score the float model on the validation split (needs float_predict).
  bool float_validation = false;
  // Named in model.h (ModelHeaderText): the job's id ("" outside a job) and name.
  std::string job_id;
  std::string name;
};

// The exported model and its figures.
struct FinalizedModel {
  Graph graph;              // the quantized graph (RunIntegerGraph / QuantizedAccuracy run it)
  std::string tflite;       // model.tflite
  std::string header;       // model.h: ModelHeaderText of tflite
  int64_t flash_bytes = 0;  // tflite.size(), equal to PredictFlashBytes(arch)
  int64_t ram_bytes = 0;    // the MCU resource model's RAM
  int calibration_images = 0;
  // Integer inference on the validation split (0 when it is empty).
  double quantized_validation_accuracy = 0;
  double float_validation_accuracy = 0;  // with options.float_validation
  bool has_test = false;                 // a test set was given
  int64_t test_images = 0;
  double float_test_accuracy = 0;  // with options.float_predict
  double quantized_test_accuracy = 0;
};

// OK when a training split of `train_images` images can give `calibration_images` (>= 150)
// calibration images; INVALID_ARGUMENT with the one "too few calibration images" message
// otherwise. Callers may check it before training; FinalizeModel checks it too.
absl::Status CheckCalibrationSet(int64_t train_images, int calibration_images);

// The calibration images: the first `n` of the training indices after a std::shuffle with
// std::mt19937_64(seed). REQUIRES n <= train.size().
std::vector<int64_t> CalibrationImages(const std::vector<int64_t>& train, int n, uint64_t seed);

// Quantizes the trained weights to the full-integer uint8 model (calibrated on
// CalibrationImages(split.train, options.calibration_images, seed)), serialises model.tflite and
// model.h and scores the model: quantized (and optionally float) validation accuracy, and float
// and quantized test accuracy when `test` (at data's shape and classes) is given.
// INVALID_ARGUMENT from CheckCalibrationSet; INTERNAL when the file's size is not
// PredictFlashBytes(arch) (a bug: the resource model promised that size before training); the
// quantizer's, the predictor's and the integer inference's errors as they are.
absl::StatusOr<FinalizedModel> FinalizeModel(const Architecture& arch, const ModelWeights& weights,
                                             const Dataset& data, const Split& split,
                                             const Dataset* test, uint64_t seed,
                                             const FinalizeOptions& options = {});

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_FINALIZE_H_
