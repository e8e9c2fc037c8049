// nanonas-eval's state: what the command line asked (EvalOptions) and what one run measured
// (EvalRun, filled step by step by RunEvalTool). Plain data; not shared between threads.
#ifndef NANONAS_WORKER_EVAL_EVAL_RUN_H_
#define NANONAS_WORKER_EVAL_EVAL_RUN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "common/api/defaults.h"
#include "common/arch/architecture.h"
#include "common/arch/mcu_model.h"
#include "common/data/dataset.h"
#include "common/export/finalize.h"
#include "worker/engine/trainer.h"

namespace nanonas {

// The command line's values (flag defaults as documented in eval_main.cc).
struct EvalOptions {
  std::string data;   // --data: a class-folder root or fashion-mnist[:N]
  int k = 0;          // 0: not given
  int c = -1;         // -1: not given
  std::string input;  // HxWxC, "" = the data's default
  int classes = 0;    // 0 = the dataset's (2 with estimate_only)
  std::string variant = defaults::kVariant;
  int epochs = defaults::kEpochs;
  double lr = defaults::kLearningRate;
  int batch = defaults::kBatchSize;
  uint64_t seed = defaults::kSeed;
  double val_split = defaults::kValidationSplit;
  int threads = 1;
  bool json = false;
  bool estimate_only = false;
  bool final = false;
  std::string export_dir;  // --export
  std::string test_data;   // --test-data
  int calibration_images = kMinRepresentativeImages;
  // Given on the command line: --final's defaults (100 epochs, lr 0.01, batch 128) apply to the
  // others only.
  bool epochs_given = false;
  bool lr_given = false;
  bool batch_given = false;

  // The final-training path: --final, --export or --test-data.
  bool final_mode() const { return final || !export_dir.empty() || !test_data.empty(); }
};

// One training run, as it goes.
struct EvalRun {
  EvalOptions options;
  CandidateSpec spec;
  TrainOptions train;  // the flags with --final's defaults applied
  Architecture arch;
  Dataset data;
  Split split;
  std::string hash;  // ContentHash(data)
  double load_seconds = 0;
  McuResources resources;
  std::optional<Dataset> test;
  std::string test_hash;  // ContentHash(*test)
  absl::Time created;     // when the command line was accepted
  absl::Time started;     // when the training started
  TrainResult result;
  // The final-training path.
  std::optional<FinalizedModel> model;
  std::vector<std::pair<std::string, std::string>> files;  // name, bytes written to --export
  double export_seconds = 0;
  int64_t peak_memory_bytes = 0;
};

}  // namespace nanonas

#endif  // NANONAS_WORKER_EVAL_EVAL_RUN_H_
