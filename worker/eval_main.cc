// nanonas-eval: evaluates one NanoNAS candidate (k, c) on a local dataset, or prints only the MCU
// resource model's figures for it.
//
//   nanonas-eval --data DIR --k 4 --c 2 [--input 50x50x3] [--epochs 3] [--json]
//   nanonas-eval --data fashion-mnist:2000 --k 4 --c 2
//   nanonas-eval --estimate-only --k 3 --c 4 --input 50x50x3 --classes 2 --json
//   nanonas-eval --data fashion-mnist --k 4 --c 2 --final --test-data fashion-mnist-test
//                --export out/
//
// Final-training mode (--final, --export or --test-data): trains with Train() (the weights of the
// best validation epoch are kept) and finalizes them as the worker service does (FinalizeModel,
// common/export/finalize.h): the full-integer uint8 model calibrated on --calibration-images
// training images chosen with --seed, scored as a float model (oneDNN) and as the quantized one
// (nanonas's integer inference, as TFLite Micro computes) on the validation split and the test
// set; --export DIR writes DIR/model.tflite, DIR/model.h, DIR/report.json and
// DIR/search-path.svg (the service's report format, a one-candidate path).
//
// This file holds the flags and main(); the tool is worker/eval/eval_tool.h.
// Exit status: 0 success, 1 failure (data, training, export, an unwritable --export directory,
// test classes that differ, too few images to calibrate), 2 bad command line.
#include <algorithm>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/api/defaults.h"
#include "worker/eval/command_line.h"
#include "worker/eval/eval_tool.h"

ABSL_FLAG(std::string, data, "",
          "dataset: a class-folder root (root/<class>/*.jpg|jpeg|png|bmp) or fashion-mnist[:N] "
          "(the first N training images of the Debian package dataset-fashion-mnist)");
ABSL_FLAG(int, k, 0, "kernels of the first convolution (>= 1)");
ABSL_FLAG(int, c, -1, "number of cells (>= 0)");
ABSL_FLAG(std::string, input, "",
          "input size HxWxC, e.g. 50x50x3 or 28x28x1 (default: 50x50x3 for folders, the data's "
          "own size for fashion-mnist; images are resized bilinearly)");
ABSL_FLAG(int, classes, 0, "number of classes (default: the dataset's; 2 with --estimate-only)");
ABSL_FLAG(std::string, variant, nanonas::defaults::kVariant,
          "search-space variant: 2023 (paper) or 2024");
ABSL_FLAG(int, epochs, nanonas::defaults::kEpochs, "training epochs");
ABSL_FLAG(double, lr, nanonas::defaults::kLearningRate, "Adam learning rate");
ABSL_FLAG(int, batch, nanonas::defaults::kBatchSize, "batch size");
ABSL_FLAG(uint64_t, seed, nanonas::defaults::kSeed,
          "seed of the split, the initialisation and the shuffles");
ABSL_FLAG(double, val_split, nanonas::defaults::kValidationSplit, "validation fraction in (0, 1)");
ABSL_FLAG(int, threads, 1, "oneDNN threads");
ABSL_FLAG(bool, json, false, "print one JSON object instead of text");
ABSL_FLAG(bool, estimate_only, false,
          "print only the MCU resource model's MACC, Flash and RAM (no data needed)");
ABSL_FLAG(bool, final, false,
          "final training: NanoNAS's defaults 100 epochs, Adam 0.01, batch 128 (an explicit "
          "--epochs/--lr/--batch wins), keeping the best validation epoch's weights; then "
          "quantize and print float and quantized accuracies");
ABSL_FLAG(std::string, export, "",
          "after training, quantize and write DIR/model.tflite, DIR/model.h (aligned C array), "
          "DIR/report.json and DIR/search-path.svg (implies the final-training path; DIR is "
          "created)");
ABSL_FLAG(std::string, test_data, "",
          "a separate test set: a class folder with the training set's class names, or "
          "fashion-mnist-test[:N] (the first N of the Debian package's 10,000 test images); "
          "prints float and quantized test accuracy (implies the final-training path)");
ABSL_FLAG(int, calibration_images, 150,
          "representative training images for the quantization's calibration (>= 150), a "
          "seeded random choice from the training split");

namespace {

// The flags' values; `given`: the flags named on the command line.
nanonas::EvalOptions OptionsFromFlags(const std::vector<std::string>& given) {
  auto was_given = [&](const char* name) {
    return std::find(given.begin(), given.end(), name) != given.end();
  };
  nanonas::EvalOptions o;
  o.data = absl::GetFlag(FLAGS_data);
  o.k = absl::GetFlag(FLAGS_k);
  o.c = absl::GetFlag(FLAGS_c);
  o.input = absl::GetFlag(FLAGS_input);
  o.classes = absl::GetFlag(FLAGS_classes);
  o.variant = absl::GetFlag(FLAGS_variant);
  o.epochs = absl::GetFlag(FLAGS_epochs);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.batch = absl::GetFlag(FLAGS_batch);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.val_split = absl::GetFlag(FLAGS_val_split);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.json = absl::GetFlag(FLAGS_json);
  o.estimate_only = absl::GetFlag(FLAGS_estimate_only);
  o.final = absl::GetFlag(FLAGS_final);
  o.export_dir = absl::GetFlag(FLAGS_export);
  o.test_data = absl::GetFlag(FLAGS_test_data);
  o.calibration_images = absl::GetFlag(FLAGS_calibration_images);
  o.epochs_given = was_given("epochs");
  o.lr_given = was_given("lr");
  o.batch_given = was_given("batch");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "evaluates one NanoNAS candidate on a local dataset.\n"
      "  nanonas-eval --data DIR|fashion-mnist[:N] --k 4 --c 2 [--input 50x50x3] [--epochs 3]\n"
      "               [--lr 0.001] [--batch 16] [--seed 1] [--val-split 0.3] [--threads 1]\n"
      "               [--variant 2023] [--json]\n"
      "  nanonas-eval --estimate-only --k 3 --c 4 [--input 50x50x3] [--classes 2] [--json]\n"
      "  nanonas-eval --data DIR|fashion-mnist[:N] --k 4 --c 2 [--final] [--export DIR]\n"
      "               [--test-data DIR|fashion-mnist-test[:N]] [--calibration-images 150]\n"
      "    (final training: best validation epoch kept, uint8 quantization, float and\n"
      "     quantized accuracies; --export writes model.tflite, model.h, report.json and\n"
      "     search-path.svg)\n"
      "Flags may be spelled with dashes or underscores (--val-split = --val_split).\n"
      "Exit status: 0 success, 1 failure, 2 bad command line.");
  // Flags are spelled with dashes on the command line (--val-split) and underscores in absl.
  std::vector<std::string> args = nanonas::UnderscoreFlagNames(argc, argv);
  if (nanonas::WantsHelp(args)) {
    nanonas::PrintFlagHelp("nanonas-eval", "eval_main", std::cout);
    return 0;
  }
  // absl::ParseCommandLine exits 1 on a bad flag; this tool promises 2, so check first.
  const nanonas::CheckedCommandLine checked = nanonas::CheckCommandLine(args);
  if (!checked.error.empty()) return nanonas::EvalUsageError(checked.error);
  std::vector<char*> fixed;
  for (std::string& a : args) fixed.push_back(a.data());
  fixed.push_back(nullptr);
  absl::ParseCommandLine(argc, fixed.data());
  return nanonas::RunEvalTool(OptionsFromFlags(checked.given));
}
