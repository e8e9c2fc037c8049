// nanonas-eval: evaluates one NanoNAS candidate (k, c) on a local dataset, or prints only the MCU
// resource model's figures for it.
//
//   nanonas-eval --data DIR --k 4 --c 2 [--input 50x50x3] [--epochs 3] [--json]
//   nanonas-eval --data fashion-mnist:2000 --k 4 --c 2
//   nanonas-eval --estimate-only --k 3 --c 4 --input 50x50x3 --classes 2 --json
//
// Exit status: 0 success, 1 failure (data, training), 2 bad command line.
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "common/arch/architecture.h"
#include "common/arch/mcu_model.h"
#include "common/base/status_macros.h"
#include "common/base/units.h"
#include "common/data/dataset.h"
#include "nlohmann/json.hpp"
#ifdef NANONAS_EVAL_HAS_ENGINE
#include "worker/engine/trainer.h"
#endif
#ifdef NANONAS_EVAL_HAS_EXPORT
#include "common/export/mcu_flash.h"
#endif

ABSL_FLAG(std::string, data, "",
          "dataset: a class-folder root (root/<class>/*.jpg|jpeg|png|bmp) or fashion-mnist[:N] "
          "(the first N training images of the Debian package dataset-fashion-mnist)");
ABSL_FLAG(int, k, 0, "kernels of the first convolution (>= 1)");
ABSL_FLAG(int, c, -1, "number of cells (>= 0)");
ABSL_FLAG(std::string, input, "",
          "input size HxWxC, e.g. 50x50x3 or 28x28x1 (default: 50x50x3 for folders, the data's "
          "own size for fashion-mnist; images are resized bilinearly)");
ABSL_FLAG(int, classes, 0,
          "number of classes (default: the dataset's; 2 with --estimate-only)");
ABSL_FLAG(std::string, variant, "2023", "search-space variant: 2023 (paper) or 2024");
ABSL_FLAG(int, epochs, 3, "training epochs");
ABSL_FLAG(double, lr, 0.001, "Adam learning rate");
ABSL_FLAG(int, batch, 16, "batch size");
ABSL_FLAG(uint64_t, seed, 1, "seed of the split, the initialisation and the shuffles");
ABSL_FLAG(double, val_split, 0.3, "validation fraction in (0, 1)");
ABSL_FLAG(int, threads, 1, "oneDNN threads");
ABSL_FLAG(bool, json, false, "print one JSON object instead of text");
ABSL_FLAG(bool, estimate_only, false,
          "print only the MCU resource model's MACC, Flash and RAM (no data needed)");

namespace nanonas {
namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int UsageError(const std::string& message) {
  std::fprintf(stderr, "nanonas-eval: %s\n(try --help)\n", message.c_str());
  return kExitUsage;
}

// absl::ParseCommandLine exits with status 1 on an unknown flag or a bad value; this tool
// promises 2 for a bad command line, so every flag is checked here first.
// Returns an error message, or "" when the command line is good.
// --help / -h: the usage message and this tool's flags, exit status 0 (absl's own --help exits 1;
// --helpfull still lists every absl flag).
bool WantsHelp(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const absl::string_view a = argv[i];
    if (a == "--") return false;
    if (a == "--help" || a == "-help" || a == "-h") return true;
  }
  return false;
}

void PrintHelp() {
  std::vector<absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::StrContains(flag->Filename(), "eval_main")) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](auto* a, auto* b) { return a->Name() < b->Name(); });
  std::cout << "nanonas-eval: " << absl::ProgramUsageMessage() << "\n\nFlags:\n";
  for (const absl::CommandLineFlag* f : flags) {
    std::string name(f->Name());
    std::replace(name.begin(), name.end(), '_', '-');
    std::cout << "  --" << name << " (default: " << f->DefaultValue() << ")\n      " << f->Help()
              << "\n";
  }
}

std::string CheckCommandLine(int argc, char** argv) {
  static const char* const kAbslFlags[] = {"help",    "helpfull", "helpshort", "helppackage",
                                           "helpon",  "helpmatch", "version", "only_check_args",
                                           "flagfile", "fromenv", "tryfromenv", "undefok"};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") return i + 1 < argc ? absl::StrCat("unexpected argument '", argv[i + 1], "'")
                                         : "";
    if (!absl::ConsumePrefix(&arg, "-")) {
      return absl::StrCat("unexpected argument '", arg, "' (flags start with --)");
    }
    absl::ConsumePrefix(&arg, "-");
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    const bool has_value = eq != absl::string_view::npos;
    bool builtin = false;
    for (const char* f : kAbslFlags) builtin |= name == f;
    if (builtin) {
      // Their values (if any) are absl's business; skip a separate value for the ones taking one.
      if (!has_value && (name == "helpon" || name == "helpmatch" || name == "flagfile" ||
                         name == "fromenv" || name == "tryfromenv" || name == "undefok")) {
        ++i;
      }
      continue;
    }
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !has_value) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) continue;
    }
    if (flag == nullptr) return absl::StrCat("unknown flag --", name);
    std::string value;
    if (has_value) {
      value = std::string(arg.substr(eq + 1));
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::StrCat("flag --", name, " needs a value");
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::StrCat("bad value '", value, "' for --", name, ": ", error);
    }
  }
  return "";
}

int64_t PeakRssBytes() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct DataSource {
  bool fashion_mnist = false;
  int64_t limit = 0;  // fashion-mnist:N (0 = all)
  std::string path;
};

absl::StatusOr<DataSource> ParseDataSource(const std::string& text) {
  DataSource src;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "fashion-mnist")) {
    src.fashion_mnist = true;
    if (rest.empty()) return src;
    if (!absl::ConsumePrefix(&rest, ":") || !absl::SimpleAtoi(rest, &src.limit) ||
        src.limit <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data '", text, "': use fashion-mnist or fashion-mnist:N with N >= 1"));
    }
    return src;
  }
  src.path = text;
  return src;
}

// Flash is the exporter's exact file size when the exporter is built in, else the converter
// estimate (McuResources::flash_exact tells which).
McuResources Resources(const Architecture& arch) {
#ifdef NANONAS_EVAL_HAS_EXPORT
  return EstimateMcuResources(arch, ExportedFlashOptions());
#else
  return EstimateMcuResources(arch);
#endif
}

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

// Loads the dataset at `shape` (empty shape: the source's default size).
absl::StatusOr<Dataset> LoadData(const DataSource& src, const std::string& input_flag,
                                 int threads) {
  if (src.fashion_mnist) {
    NANONAS_ASSIGN_OR_RETURN(Dataset all, LoadFashionMnist(/*train=*/true));
    if (src.limit > 0) {
      if (src.limit > all.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "fashion-mnist:", src.limit, " asks for more than its ", all.size(), " images"));
      }
      std::vector<int64_t> first(static_cast<size_t>(src.limit));
      for (int64_t i = 0; i < src.limit; ++i) first[i] = i;
      all = Subset(all, first);
    }
    if (input_flag.empty()) return all;
    NANONAS_ASSIGN_OR_RETURN(InputShape shape, ParseInputShape(input_flag));
    if (shape == all.shape) return all;
    return ResizeDataset(all, shape);
  }
  FolderOptions options;
  options.threads = threads;
  NANONAS_ASSIGN_OR_RETURN(options.size,
                           ParseInputShape(input_flag.empty() ? "50x50x3" : input_flag));
  return LoadImageFolder(src.path, options);
}

int Run() {
  const bool json = absl::GetFlag(FLAGS_json);
  // ---- Check the flags: every problem here exits 2 -------------------------------------------
  CandidateSpec spec;
  spec.k = absl::GetFlag(FLAGS_k);
  spec.c = absl::GetFlag(FLAGS_c);
  if (spec.k == 0) return UsageError("--k is required (kernels of the first conv, >= 1)");
  if (spec.c == -1) return UsageError("--c is required (number of cells, >= 0)");
  absl::StatusOr<Variant> variant = ParseVariant(absl::GetFlag(FLAGS_variant));
  if (!variant.ok()) return UsageError(std::string(variant.status().message()));
  spec.variant = *variant;
  const std::string input_flag = absl::GetFlag(FLAGS_input);
  if (!input_flag.empty()) {
    absl::StatusOr<InputShape> shape = ParseInputShape(input_flag);
    if (!shape.ok()) return UsageError(std::string(shape.status().message()));
  }
  const int classes_flag = absl::GetFlag(FLAGS_classes);
  if (classes_flag < 0 || classes_flag == 1) {
    return UsageError(absl::StrCat("--classes ", classes_flag, " must be >= 2"));
  }

  if (absl::GetFlag(FLAGS_estimate_only)) {
    if (!absl::GetFlag(FLAGS_data).empty()) {
      return UsageError("--estimate-only needs no --data (give --input and --classes)");
    }
    spec.input = *ParseInputShape(input_flag.empty() ? "50x50x3" : input_flag);
    spec.classes = classes_flag == 0 ? 2 : classes_flag;
    absl::StatusOr<Architecture> arch = BuildArchitecture(spec);
    if (!arch.ok()) return UsageError(std::string(arch.status().message()));
    const McuResources r = Resources(*arch);
    if (json) {
      std::cout << ResourcesJson(r).dump() << "\n";
    } else {
      std::cout << DescribeArchitecture(*arch) << "\n" << ResourcesText(r) << "\n";
    }
    return 0;
  }

#ifndef NANONAS_EVAL_HAS_ENGINE
  return UsageError("this build has no training engine: only --estimate-only is available");
#else
  if (absl::GetFlag(FLAGS_data).empty()) {
    return UsageError("--data is required (or --estimate-only)");
  }
  absl::StatusOr<DataSource> source = ParseDataSource(absl::GetFlag(FLAGS_data));
  if (!source.ok()) return UsageError(std::string(source.status().message()));
  TrainOptions options;
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.learning_rate = static_cast<float>(absl::GetFlag(FLAGS_lr));
  options.batch_size = absl::GetFlag(FLAGS_batch);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.progress_every_batches = 0;
  const double val_split = absl::GetFlag(FLAGS_val_split);
  if (options.epochs < 1) return UsageError("--epochs must be >= 1");
  if (!(absl::GetFlag(FLAGS_lr) > 0)) return UsageError("--lr must be > 0");
  if (options.batch_size < 1) return UsageError("--batch must be >= 1");
  if (options.threads < 1) return UsageError("--threads must be >= 1");
  if (!(val_split > 0 && val_split < 1)) {
    return UsageError("--val-split must be in (0, 1): the score is the validation accuracy");
  }
  // The architecture's own checks (k, c against the input) before spending time on the data.
  spec.input = *ParseInputShape(input_flag.empty() ? (source->fashion_mnist ? "28x28x1"
                                                                             : "50x50x3")
                                                   : input_flag);
  spec.classes = classes_flag == 0 ? 2 : classes_flag;
  if (absl::StatusOr<Architecture> a = BuildArchitecture(spec); !a.ok()) {
    return UsageError(std::string(a.status().message()));
  }

  // ---- Data ---------------------------------------------------------------------------------
  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<Dataset> data = LoadData(*source, input_flag, options.threads);
  if (!data.ok()) {
    std::fprintf(stderr, "nanonas-eval: loading the data: %s\n",
                 std::string(data.status().message()).c_str());
    return kExitFailure;
  }
  const double load_seconds = SecondsSince(load_start);
  if (classes_flag != 0 && classes_flag != data->num_classes()) {
    return UsageError(absl::StrCat("--classes ", classes_flag, " but the dataset has ",
                                   data->num_classes(), " classes"));
  }
  spec.input = data->shape;
  spec.classes = data->num_classes();
  absl::StatusOr<Architecture> arch = BuildArchitecture(spec);
  if (!arch.ok()) return UsageError(std::string(arch.status().message()));
  absl::StatusOr<Split> split = SplitTrainValidation(*data, val_split, options.seed);
  if (!split.ok()) {
    std::fprintf(stderr, "nanonas-eval: %s\n", std::string(split.status().message()).c_str());
    return kExitFailure;
  }
  const std::string hash = ContentHash(*data);
  const McuResources resources = Resources(*arch);
  if (!json) {
    std::cout << DescribeArchitecture(*arch) << "\n"
              << absl::StrFormat("data: %s, %d images (%d train, %d validation), %d classes, "
                                 "hash %s, loaded in %.2f s\n",
                                 absl::GetFlag(FLAGS_data), data->size(), split->train.size(),
                                 split->validation.size(), data->num_classes(),
                                 hash.substr(0, 16), load_seconds)
              << std::flush;
  }

  // ---- Training -----------------------------------------------------------------------------
  static CancelFlag cancel;
  std::signal(SIGINT, [](int) { cancel.Cancel(); });
  ProgressCallback progress = [&](const Progress& p) {
    if (json || p.kind != Progress::Kind::kEpoch) return;
    const EpochStats& e = p.epoch_stats;
    std::cout << absl::StrFormat(
                     "epoch %d/%d: train loss %.4f accuracy %.4f, validation loss %.4f "
                     "accuracy %.4f, %.2f s\n",
                     e.epoch, options.epochs, e.train_loss, e.train_accuracy, e.validation_loss,
                     e.validation_accuracy, e.seconds)
              << std::flush;
  };
  absl::StatusOr<TrainResult> result = Evaluate(*arch, *data, *split, options, progress, &cancel);
  if (!result.ok()) {
    std::fprintf(stderr, "nanonas-eval: training: %s\n",
                 std::string(result.status().ToString()).c_str());
    return kExitFailure;
  }
  const int64_t peak = PeakRssBytes();

  if (json) {
    nlohmann::ordered_json j;
    j["k"] = spec.k;
    j["c"] = spec.c;
    j["channels"] = arch->channels;
    j["input"] = FormatInputShape(spec.input);
    j["classes"] = spec.classes;
    j["variant"] = VariantName(spec.variant);
    j["images"] = data->size();
    j["train_images"] = split->train.size();
    j["validation_images"] = split->validation.size();
    j["dataset_hash"] = hash;
    j["epochs"] = nlohmann::ordered_json::array();
    for (const EpochStats& e : result->epochs) {
      j["epochs"].push_back({{"epoch", e.epoch},
                             {"train_loss", e.train_loss},
                             {"train_accuracy", e.train_accuracy},
                             {"validation_loss", e.validation_loss},
                             {"validation_accuracy", e.validation_accuracy},
                             {"seconds", e.seconds}});
    }
    j["best_validation_accuracy"] = result->best_validation_accuracy;
    j["best_epoch"] = result->best_epoch;
    j["macc"] = resources.macc;
    j["flash_bytes"] = resources.flash_bytes;
    j["flash_exact"] = resources.flash_exact;
    j["ram_bytes"] = resources.ram_bytes;
    j["load_seconds"] = load_seconds;
    j["training_seconds"] = result->seconds;
    j["train_images_per_second"] = result->train_images_per_second;
    j["peak_memory_bytes"] = peak;
    j["threads"] = options.threads;
    std::cout << j.dump() << "\n";
  } else {
    std::cout << absl::StrFormat("best validation accuracy %.4f (epoch %d)\n",
                                 result->best_validation_accuracy, result->best_epoch)
              << ResourcesText(resources) << "\n"
              << absl::StrFormat("training %.2f s, %.0f images/s (%d threads), peak memory %s\n",
                                 result->seconds, result->train_images_per_second,
                                 options.threads, FormatBytes(peak));
  }
  return 0;
#endif
}

}  // namespace
}  // namespace nanonas

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "evaluates one NanoNAS candidate on a local dataset.\n"
      "  nanonas-eval --data DIR|fashion-mnist[:N] --k 4 --c 2 [--input 50x50x3] [--epochs 3]\n"
      "               [--lr 0.001] [--batch 16] [--seed 1] [--val-split 0.3] [--threads 1]\n"
      "               [--variant 2023] [--json]\n"
      "  nanonas-eval --estimate-only --k 3 --c 4 [--input 50x50x3] [--classes 2] [--json]\n"
      "Flags may be spelled with dashes or underscores (--val-split = --val_split).\n"
      "Exit status: 0 success, 1 failure, 2 bad command line.");
  // Flags are spelled with dashes on the command line (--val-split) and underscores in absl.
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size() && args[i] != "--"; ++i) {
    std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') continue;
    const size_t start = a.find_first_not_of('-');
    const size_t end = std::min(a.find('='), a.size());
    for (size_t j = start; j < end && start != std::string::npos; ++j) {
      if (a[j] == '-') a[j] = '_';
    }
  }
  std::vector<char*> fixed;
  for (std::string& a : args) fixed.push_back(a.data());
  fixed.push_back(nullptr);
  if (nanonas::WantsHelp(argc, fixed.data())) {
    nanonas::PrintHelp();
    return 0;
  }
  const std::string problem = nanonas::CheckCommandLine(argc, fixed.data());
  if (!problem.empty()) return nanonas::UsageError(problem);
  absl::ParseCommandLine(argc, fixed.data());
  return nanonas::Run();
}
