#include "worker/eval/eval_output.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/units.h"

namespace nanonas {
namespace {

std::string ExportPath(const EvalRun& run, const std::string& name) {
  return (std::filesystem::path(run.options.export_dir) / name).string();
}

// The final-training path's keys of the JSON result.
void AddFinalJson(const EvalRun& run, nlohmann::ordered_json& j) {
  const FinalizedModel& m = *run.model;
  j["float_validation_accuracy"] = m.float_validation_accuracy;
  j["quantized_validation_accuracy"] = m.quantized_validation_accuracy;
  j["calibration_images"] = m.calibration_images;
  if (m.has_test) {
    j["test_data"] = run.options.test_data;
    j["test_images"] = m.test_images;
    j["test_dataset_hash"] = run.test_hash;
    j["float_test_accuracy"] = m.float_test_accuracy;
    j["quantized_test_accuracy"] = m.quantized_test_accuracy;
  }
  j["tflite_bytes"] = m.flash_bytes;
  // FinalizeModel fails unless the file has exactly the predicted size.
  j["predicted_flash_bytes"] = m.flash_bytes;
  j["flash_matches_prediction"] = true;
  j["export_seconds"] = run.export_seconds;
  if (run.options.export_dir.empty()) return;
  nlohmann::ordered_json e;
  e["dir"] = run.options.export_dir;
  e["files"] = nlohmann::ordered_json::array();
  for (const auto& [name, bytes] : run.files) {
    e["files"].push_back(
        {{"name", name}, {"path", ExportPath(run, name)}, {"bytes", bytes.size()}});
  }
  j["export"] = e;
}

}  // namespace

nlohmann::ordered_json ResourcesJson(const McuResources& r) {
  nlohmann::ordered_json j;
  j["macc"] = r.macc;
  j["flash_bytes"] = r.flash_bytes;
  j["ram_bytes"] = r.ram_bytes;
  return j;
}

std::string ResourcesText(const McuResources& r) {
  return absl::StrCat("MACC ", FormatCount(r.macc), " (", r.macc, "), Flash ",
                      FormatBytes(r.flash_bytes), " (", r.flash_bytes, " B",
                      r.flash_exact ? ", exported file" : ", converter estimate", "), RAM ",
                      FormatBytes(r.ram_bytes), " (", r.ram_bytes, " B)");
}

std::string DataLine(const EvalRun& run) {
  return absl::StrFormat(
      "data: %s, %d images (%d train, %d validation), %d classes, hash %s, loaded in %.2f s\n",
      run.options.data, run.data.size(), run.split.train.size(), run.split.validation.size(),
      run.data.num_classes(), run.hash.substr(0, 16), run.load_seconds);
}

std::string EpochLine(const EpochStats& e, int epochs) {
  return absl::StrFormat(
      "epoch %d/%d: train loss %.4f accuracy %.4f, validation loss %.4f accuracy %.4f, %.2f s\n",
      e.epoch, epochs, e.train_loss, e.train_accuracy, e.validation_loss, e.validation_accuracy,
      e.seconds);
}

void PrintResultJson(const EvalRun& run, std::ostream& out) {
  const TrainResult& result = run.result;
  const TrainOptions& options = run.train;
  nlohmann::ordered_json j;
  j["k"] = run.spec.k;
  j["c"] = run.spec.c;
  j["channels"] = run.arch.channels;
  j["input"] = FormatInputShape(run.spec.input);
  j["classes"] = run.spec.classes;
  j["variant"] = VariantName(run.spec.variant);
  j["images"] = run.data.size();
  j["train_images"] = run.split.train.size();
  j["validation_images"] = run.split.validation.size();
  j["dataset_hash"] = run.hash;
  j["epochs"] = nlohmann::ordered_json::array();
  for (const EpochStats& e : result.epochs) {
    j["epochs"].push_back({{"epoch", e.epoch},
                           {"train_loss", e.train_loss},
                           {"train_accuracy", e.train_accuracy},
                           {"validation_loss", e.validation_loss},
                           {"validation_accuracy", e.validation_accuracy},
                           {"seconds", e.seconds}});
  }
  j["best_validation_accuracy"] = result.best_validation_accuracy;
  j["best_epoch"] = result.best_epoch;
  j["macc"] = run.resources.macc;
  j["flash_bytes"] = run.resources.flash_bytes;
  j["flash_exact"] = run.resources.flash_exact;
  j["ram_bytes"] = run.resources.ram_bytes;
  j["load_seconds"] = run.load_seconds;
  j["training_seconds"] = result.seconds;
  j["train_images_per_second"] = result.train_images_per_second;
  j["peak_memory_bytes"] = run.peak_memory_bytes;
  j["threads"] = options.threads;
  j["settings"] = {{"epochs", options.epochs},
                   {"learning_rate", options.learning_rate},
                   {"batch_size", options.batch_size},
                   {"seed", options.seed},
                   {"validation_split", run.options.val_split},
                   {"final", run.options.final},
                   {"keep_best_weights", run.options.final_mode()}};
  if (run.model.has_value()) AddFinalJson(run, j);
  out << j.dump() << "\n";
}

void PrintResultText(const EvalRun& run, std::ostream& out) {
  const TrainResult& result = run.result;
  out << absl::StrFormat("best validation accuracy %.4f (epoch %d)\n",
                         result.best_validation_accuracy, result.best_epoch)
      << ResourcesText(run.resources) << "\n"
      << absl::StrFormat("training %.2f s, %.0f images/s (%d threads), peak memory %s\n",
                         result.seconds, result.train_images_per_second, run.train.threads,
                         FormatBytes(run.peak_memory_bytes));
  if (!run.model.has_value()) return;
  const FinalizedModel& m = *run.model;
  out << absl::StrFormat(
      "validation (%d images): float accuracy %.4f, quantized (integer inference) %.4f; "
      "calibrated on %d training images\n",
      run.split.validation.size(), m.float_validation_accuracy, m.quantized_validation_accuracy,
      m.calibration_images);
  if (m.has_test) {
    out << absl::StrFormat(
        "test %s (%d images): float accuracy %.4f, quantized (integer inference) %.4f\n",
        run.options.test_data, m.test_images, m.float_test_accuracy, m.quantized_test_accuracy);
  }
  out << absl::StrFormat("model.tflite %d bytes, predicted Flash %d bytes: %s\n", m.flash_bytes,
                         m.flash_bytes, "equal");
  for (const auto& [name, bytes] : run.files) {
    out << absl::StrFormat("wrote %s (%d bytes)\n", ExportPath(run, name), bytes.size());
  }
}

}  // namespace nanonas
