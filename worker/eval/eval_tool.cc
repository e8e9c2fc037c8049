#include "worker/eval/eval_tool.h"

#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/api/defaults.h"
#include "common/base/status_macros.h"
#include "common/export/mcu_flash.h"
#include "common/export/tflite_writer.h"
#include "worker/eval/eval_data.h"
#include "worker/eval/eval_output.h"
#include "worker/eval/eval_report.h"

namespace nanonas {
namespace {

// Errors carry their exit status: a usage error (exit 2) has this payload, any other is a
// failure (exit 1). Either message is printed after "nanonas-eval: ".
constexpr absl::string_view kUsagePayload = "nanonas-eval/usage";

absl::Status Usage(absl::string_view message) {
  absl::Status s = absl::InvalidArgumentError(message);
  s.SetPayload(kUsagePayload, absl::Cord("usage"));
  return s;
}

bool IsUsage(const absl::Status& s) { return s.GetPayload(kUsagePayload).has_value(); }

absl::Status Failure(absl::string_view message) { return absl::UnknownError(message); }

template <typename T>
absl::StatusOr<T> AsUsage(absl::StatusOr<T> value) {
  if (!value.ok()) return Usage(value.status().message());
  return value;
}

// Set by SIGINT; the training stops between batches.
CancelFlag g_cancel;

int64_t PeakRssBytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Flash is the exporter's exact file size.
McuResources Resources(const Architecture& arch) {
  return EstimateMcuResources(arch, ExportedFlashOptions());
}

// The candidate's flags: --k, --c, --variant, --input, --classes (usage errors).
absl::Status CheckModelFlags(const EvalOptions& o, CandidateSpec* spec) {
  spec->k = o.k;
  spec->c = o.c;
  if (spec->k == 0) return Usage("--k is required (kernels of the first conv, >= 1)");
  if (spec->c == -1) return Usage("--c is required (number of cells, >= 0)");
  NANONAS_ASSIGN_OR_RETURN(spec->variant, AsUsage(ParseVariant(o.variant)));
  if (!o.input.empty()) NANONAS_RETURN_IF_ERROR(AsUsage(ParseInputShape(o.input)).status());
  if (o.classes < 0 || o.classes == 1) {
    return Usage(absl::StrCat("--classes ", o.classes, " must be >= 2"));
  }
  return absl::OkStatus();
}

// --estimate-only: the resource model's figures, no data.
absl::Status RunEstimate(const EvalOptions& o, CandidateSpec spec) {
  if (!o.data.empty()) return Usage("--estimate-only needs no --data (give --input and --classes)");
  if (o.final_mode()) {
    return Usage("--estimate-only trains nothing: --final, --export and --test-data need --data");
  }
  spec.input = *ParseInputShape(o.input.empty() ? "50x50x3" : o.input);
  spec.classes = o.classes == 0 ? 2 : o.classes;
  NANONAS_ASSIGN_OR_RETURN(const Architecture arch, AsUsage(BuildArchitecture(spec)));
  const McuResources r = Resources(arch);
  if (o.json) {
    std::cout << ResourcesJson(r).dump() << "\n";
  } else {
    std::cout << DescribeArchitecture(arch) << "\n" << ResourcesText(r) << "\n";
  }
  return absl::OkStatus();
}

// The training options from the flags, --final's defaults for those not given (usage errors).
absl::StatusOr<TrainOptions> TrainOptionsFrom(const EvalOptions& o) {
  TrainOptions t;
  t.epochs = o.final && !o.epochs_given ? defaults::kFinalEpochs : o.epochs;
  t.learning_rate =
      o.final && !o.lr_given ? defaults::kFinalLearningRate : static_cast<float>(o.lr);
  t.batch_size = o.final && !o.batch_given ? defaults::kFinalBatchSize : o.batch;
  t.seed = o.seed;
  t.threads = o.threads;
  t.progress_every_batches = 0;
  if (t.epochs < 1) return Usage("--epochs must be >= 1");
  if (!(o.lr > 0)) return Usage("--lr must be > 0");
  if (t.batch_size < 1) return Usage("--batch must be >= 1");
  if (t.threads < 1) return Usage("--threads must be >= 1");
  if (!(o.val_split > 0 && o.val_split < 1)) {
    return Usage("--val-split must be in (0, 1): the score is the validation accuracy");
  }
  return t;
}

// The training path's command line (usage errors): the data sources, the training options and
// the architecture at the data's default input, before any time is spent on the data.
absl::Status PlanTraining(EvalRun* run, DataSource* source, std::optional<DataSource>* test) {
  const EvalOptions& o = run->options;
  if (o.data.empty()) return Usage("--data is required (or --estimate-only)");
  NANONAS_ASSIGN_OR_RETURN(*source, AsUsage(ParseDataSource(o.data)));
  if (!o.test_data.empty()) {
    NANONAS_ASSIGN_OR_RETURN(*test, AsUsage(ParseTestSource(o.test_data)));
  }
  if (o.calibration_images < kMinRepresentativeImages) {
    return Usage(absl::StrCat("--calibration-images must be >= ", kMinRepresentativeImages));
  }
  NANONAS_ASSIGN_OR_RETURN(run->train, TrainOptionsFrom(o));
  run->spec.input = *ParseInputShape(!o.input.empty()        ? o.input
                                     : source->fashion_mnist ? "28x28x1"
                                                             : "50x50x3");
  run->spec.classes = o.classes == 0 ? 2 : o.classes;
  return AsUsage(BuildArchitecture(run->spec)).status();
}

// Everything the training needs, checked before it starts: the --export directory, the data,
// the architecture at the data's size, the split, the test set and the calibration's needs.
absl::Status Prepare(const DataSource& source, const std::optional<DataSource>& test_source,
                     EvalRun* run) {
  const EvalOptions& o = run->options;
  if (!o.export_dir.empty()) {
    if (absl::Status s = PrepareExportDir(o.export_dir); !s.ok()) return Failure(s.message());
  }
  run->created = absl::Now();
  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<Dataset> data = LoadData(source, o.input, run->train.threads);
  if (!data.ok()) return Failure(absl::StrCat("loading the data: ", data.status().message()));
  run->data = *std::move(data);
  run->load_seconds = SecondsSince(load_start);
  if (o.classes != 0 && o.classes != run->data.num_classes()) {
    return Usage(absl::StrCat("--classes ", o.classes, " but the dataset has ",
                              run->data.num_classes(), " classes"));
  }
  run->spec.input = run->data.shape;
  run->spec.classes = run->data.num_classes();
  NANONAS_ASSIGN_OR_RETURN(run->arch, AsUsage(BuildArchitecture(run->spec)));
  absl::StatusOr<Split> split = SplitTrainValidation(run->data, o.val_split, run->train.seed);
  if (!split.ok()) return Failure(split.status().message());
  run->split = *std::move(split);
  run->hash = ContentHash(run->data);
  run->resources = Resources(run->arch);
  if (test_source.has_value()) {
    absl::StatusOr<Dataset> t = LoadTestData(*test_source, run->data, run->train.threads);
    if (!t.ok()) {
      return Failure(
          absl::StrCat("loading the test data ", o.test_data, ": ", t.status().message()));
    }
    run->test = *std::move(t);
    run->test_hash = ContentHash(*run->test);
  }
  if (!o.final_mode()) return absl::OkStatus();
  absl::Status enough =
      CheckCalibrationSet(static_cast<int64_t>(run->split.train.size()), o.calibration_images);
  if (enough.ok()) return enough;
  return Failure(absl::StrCat(enough.message(), " (", run->data.size(), " images, --val-split ",
                              o.val_split, ")"));
}

// Trains (the final-training path keeps the best epoch's weights); SIGINT cancels.
absl::Status TrainCandidate(EvalRun* run) {
  std::signal(SIGINT, [](int) { g_cancel.Cancel(); });
  const bool text = !run->options.json;
  const int epochs = run->train.epochs;
  ProgressCallback progress = [&](const Progress& p) {
    if (text && p.kind == Progress::Kind::kEpoch) {
      std::cout << EpochLine(p.epoch_stats, epochs) << std::flush;
    }
  };
  run->started = absl::Now();
  absl::StatusOr<TrainResult> result =
      run->options.final_mode()
          ? Train(run->arch, run->data, run->split, run->train, progress, &g_cancel)
          : Evaluate(run->arch, run->data, run->split, run->train, progress, &g_cancel);
  if (!result.ok()) return Failure(absl::StrCat("training: ", result.status().ToString()));
  run->result = *std::move(result);
  return absl::OkStatus();
}

// The final-training path: FinalizeModel (the worker's own export path) on the kept weights,
// then the --export files.
absl::Status FinalizeAndExport(EvalRun* run) {
  const auto start = std::chrono::steady_clock::now();
  if (!run->result.best_weights.has_value()) {
    return Failure("training: INTERNAL: Train() returned no best weights");
  }
  const ModelWeights& weights = *run->result.best_weights;
  FinalizeOptions options;
  options.calibration_images = run->options.calibration_images;
  options.float_validation = true;
  options.float_predict = [&](const Dataset& d, const std::vector<int64_t>& indices) {
    return Predict(run->arch, weights, d, indices, run->train.threads);
  };
  options.name = absl::StrCat("k", run->spec.k, "_c", run->spec.c);  // nanonas_k4_c2_model
  absl::StatusOr<FinalizedModel> model =
      FinalizeModel(run->arch, weights, run->data, run->split,
                    run->test.has_value() ? &*run->test : nullptr, run->train.seed, options);
  if (!model.ok()) {
    return Failure(absl::StrCat("quantization and export: ", model.status().ToString()));
  }
  run->model = *std::move(model);
  const std::string& dir = run->options.export_dir;
  if (!dir.empty()) {
    run->files = ExportFiles(*run, PeakRssBytes());
    for (const auto& [name, bytes] : run->files) {
      const std::string path = (std::filesystem::path(dir) / name).string();
      if (absl::Status s = WriteBinaryFile(path, bytes); !s.ok()) {
        return Failure(absl::StrCat("export: ", s.ToString()));
      }
    }
  }
  run->export_seconds = SecondsSince(start);
  return absl::OkStatus();
}

absl::Status Run(const EvalOptions& options) {
  EvalRun run;
  run.options = options;
  NANONAS_RETURN_IF_ERROR(CheckModelFlags(options, &run.spec));
  if (options.estimate_only) return RunEstimate(options, run.spec);
  DataSource source;
  std::optional<DataSource> test_source;
  NANONAS_RETURN_IF_ERROR(PlanTraining(&run, &source, &test_source));
  NANONAS_RETURN_IF_ERROR(Prepare(source, test_source, &run));
  if (!options.json) {
    std::cout << DescribeArchitecture(run.arch) << "\n" << DataLine(run) << std::flush;
  }
  NANONAS_RETURN_IF_ERROR(TrainCandidate(&run));
  if (options.final_mode()) NANONAS_RETURN_IF_ERROR(FinalizeAndExport(&run));
  run.peak_memory_bytes = PeakRssBytes();
  if (options.json) {
    PrintResultJson(run, std::cout);
  } else {
    PrintResultText(run, std::cout);
  }
  return absl::OkStatus();
}

}  // namespace

int EvalUsageError(const std::string& message) {
  std::fprintf(stderr, "nanonas-eval: %s\n(try --help)\n", message.c_str());
  return kEvalExitUsage;
}

int RunEvalTool(const EvalOptions& options) {
  const absl::Status s = Run(options);
  if (s.ok()) return 0;
  if (IsUsage(s)) return EvalUsageError(std::string(s.message()));
  std::fprintf(stderr, "nanonas-eval: %s\n", std::string(s.message()).c_str());
  return kEvalExitFailure;
}

}  // namespace nanonas
