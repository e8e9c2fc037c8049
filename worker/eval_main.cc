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
// best validation epoch are kept), quantizes them to the full-integer uint8 model (calibrated on
// --calibration-images training images chosen with --seed), scores the float model (oneDNN) and
// the quantized one (nanonas's integer inference, as TFLite Micro computes) on the validation
// split and the test set, and with --export DIR writes DIR/model.tflite, DIR/model.h,
// DIR/report.json and DIR/search-path.svg (the service's report format, a one-candidate path).
//
// Exit status: 0 success, 1 failure (data, training, export, an unwritable --export directory,
// test classes that differ, too few images to calibrate), 2 bad command line.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
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
#if defined(NANONAS_EVAL_HAS_ENGINE) && defined(NANONAS_EVAL_HAS_EXPORT)
#define NANONAS_EVAL_HAS_FINAL 1
#include <openssl/evp.h>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/export/c_header.h"
#include "common/export/graph.h"
#include "common/export/inference.h"
#include "common/export/quantize.h"
#include "common/export/report.h"
#include "common/export/tflite_writer.h"
#include "nanonas/v1/nanonas.pb.h"
#endif

ABSL_FLAG(std::string, data, "",
          "dataset: a class-folder root (root/<class>/*.jpg|jpeg|png|bmp) or fashion-mnist[:N] "
          "(the first N training images of the Debian package dataset-fashion-mnist)");
ABSL_FLAG(int, k, 0, "kernels of the first convolution (>= 1)");
ABSL_FLAG(int, c, -1, "number of cells (>= 0)");
ABSL_FLAG(std::string, input, "",
          "input size HxWxC, e.g. 50x50x3 or 28x28x1 (default: 50x50x3 for folders, the data's "
          "own size for fashion-mnist; images are resized bilinearly)");
ABSL_FLAG(int, classes, 0, "number of classes (default: the dataset's; 2 with --estimate-only)");
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
  std::sort(flags.begin(), flags.end(), [](auto* a, auto* b) { return a->Name() < b->Name(); });
  std::cout << "nanonas-eval: " << absl::ProgramUsageMessage() << "\n\nFlags:\n";
  for (const absl::CommandLineFlag* f : flags) {
    std::string name(f->Name());
    std::replace(name.begin(), name.end(), '_', '-');
    std::cout << "  --" << name << " (default: " << f->DefaultValue() << ")\n      " << f->Help()
              << "\n";
  }
}

// Names of the flags given on the command line (absl's IsSpecifiedOnCommandLine is private in
// this Abseil release); filled by CheckCommandLine.
std::vector<std::string>& GivenFlags() {
  static std::vector<std::string> given;
  return given;
}

bool GivenOnCommandLine(absl::string_view name) {
  const std::vector<std::string>& given = GivenFlags();
  return std::find(given.begin(), given.end(), name) != given.end();
}

std::string CheckCommandLine(int argc, char** argv) {
  static const char* const kAbslFlags[] = {"help",     "helpfull",  "helpshort",  "helppackage",
                                           "helpon",   "helpmatch", "version",    "only_check_args",
                                           "flagfile", "fromenv",   "tryfromenv", "undefok"};
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--")
      return i + 1 < argc ? absl::StrCat("unexpected argument '", argv[i + 1], "'") : "";
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
    GivenFlags().emplace_back(name);
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
    if (!absl::ConsumePrefix(&rest, ":") || !absl::SimpleAtoi(rest, &src.limit) || src.limit <= 0) {
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

#ifdef NANONAS_EVAL_HAS_FINAL
// ---- Final-training path: test set, export directory, calibration, report -------------------

struct TestSource {
  bool fashion_mnist = false;
  int64_t limit = 0;  // fashion-mnist-test:N (0 = all 10,000)
  std::string path;
};

absl::StatusOr<TestSource> ParseTestSource(const std::string& text) {
  TestSource src;
  absl::string_view rest = text;
  if (absl::ConsumePrefix(&rest, "fashion-mnist-test")) {
    src.fashion_mnist = true;
    if (rest.empty()) return src;
    if (!absl::ConsumePrefix(&rest, ":") || !absl::SimpleAtoi(rest, &src.limit) || src.limit <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--test-data '", text, "': use fashion-mnist-test or fashion-mnist-test:N with N >= 1"));
    }
    return src;
  }
  src.path = text;
  return src;
}

// The test set at the training data's image shape, its labels in the training set's class order.
// INVALID_ARGUMENT when its classes differ from the training set's.
absl::StatusOr<Dataset> LoadTestData(const TestSource& src, const Dataset& train, int threads) {
  Dataset test;
  if (src.fashion_mnist) {
    NANONAS_ASSIGN_OR_RETURN(test, LoadFashionMnist(/*train=*/false));
    if (src.limit > 0) {
      if (src.limit > test.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "fashion-mnist-test:", src.limit, " asks for more than its ", test.size(), " images"));
      }
      std::vector<int64_t> first(static_cast<size_t>(src.limit));
      for (int64_t i = 0; i < src.limit; ++i) first[i] = i;
      test = Subset(test, first);
    }
    if (test.class_names != train.class_names) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the test set's classes (", absl::StrJoin(test.class_names, ", "),
          ") differ from the training set's (", absl::StrJoin(train.class_names, ", "), ")"));
    }
    if (!(test.shape == train.shape)) {
      NANONAS_ASSIGN_OR_RETURN(test, ResizeDataset(test, train.shape));
    }
    return test;
  }
  FolderOptions options;
  options.size = train.shape;
  options.threads = threads;
  options.class_names = train.class_names;  // same names, same label order, or an error
  return LoadImageFolder(src.path, options);
}

// Creates `dir` (and its parents) and checks that a file can be written there, so that a bad
// --export fails before the training rather than after it.
absl::Status PrepareExportDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the --export directory ", dir, ": ", ec.message()));
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("--export ", dir, " exists and is not a directory"));
  }
  const std::string probe =
      (fs::path(dir) / absl::StrCat(".nanonas-eval-probe-", getpid())).string();
  FILE* f = std::fopen(probe.c_str(), "wb");
  if (f == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("the --export directory ", dir, " is not writable"));
  }
  std::fclose(f);
  fs::remove(probe, ec);
  return absl::OkStatus();
}

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < len; ++i)
    absl::StrAppend(&hex, absl::Hex(digest[i], absl::kZeroPad2));
  return hex;
}

// A seeded random choice of `n` training images for the calibration (REQUIRES n <= train.size()).
std::vector<int64_t> RepresentativeImages(const std::vector<int64_t>& train, int n, uint64_t seed) {
  std::vector<int64_t> pool = train;
  std::mt19937_64 rng(seed ^ 0x63616c6962726174ULL);  // "calibrat": not the split's stream
  for (int i = 0; i < n; ++i) {
    std::uniform_int_distribution<size_t> pick(static_cast<size_t>(i), pool.size() - 1);
    std::swap(pool[static_cast<size_t>(i)], pool[pick(rng)]);
  }
  pool.resize(static_cast<size_t>(n));
  return pool;
}

double Accuracy(const std::vector<int32_t>& predicted, const Dataset& data,
                const std::vector<int64_t>& indices) {
  int64_t right = 0;
  for (size_t i = 0; i < indices.size(); ++i) {
    right += predicted[i] == data.labels[static_cast<size_t>(indices[i])];
  }
  return indices.empty() ? 0 : static_cast<double>(right) / static_cast<double>(indices.size());
}

std::vector<int64_t> AllIndices(const Dataset& data) {
  std::vector<int64_t> all(static_cast<size_t>(data.size()));
  for (int64_t i = 0; i < data.size(); ++i) all[static_cast<size_t>(i)] = i;
  return all;
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t nanos = absl::ToUnixNanos(t);
  ts.set_seconds(nanos / 1000000000);
  ts.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ts;
}

// Everything the final-training path measured, for the report and the output.
struct FinalFigures {
  double float_validation_accuracy = 0;
  double quantized_validation_accuracy = 0;
  int calibration_images = 0;
  bool has_test = false;
  int64_t test_images = 0;
  std::string test_hash;
  double float_test_accuracy = 0;
  double quantized_test_accuracy = 0;
  int64_t tflite_bytes = 0;
  int64_t predicted_flash_bytes = 0;
};

// A one-candidate job as the coordinator would record it (the candidate is the path, the same
// training is its final training), so that report.json and search-path.svg come out in the
// service's format. `artifacts`: name and bytes of the files listed in the report.
nanonas::v1::Job ReportJob(const CandidateSpec& spec, const std::string& data_flag,
                           const Dataset& data, const std::string& hash,
                           const std::string& test_flag, double val_split,
                           const TrainOptions& options, const TrainResult& result,
                           const McuResources& resources, const FinalFigures& f,
                           const std::vector<std::pair<std::string, std::string>>& artifacts,
                           absl::Time created, absl::Time started, absl::Time finished,
                           int64_t peak_memory) {
  namespace v1 = nanonas::v1;
  v1::Job job;
  job.set_id("local");
  v1::JobSpec& s = *job.mutable_spec();
  s.set_name(absl::StrCat("nanonas-eval k=", spec.k, " c=", spec.c, " on ", data_flag));
  s.set_dataset_id(absl::StrCat("sha256:", hash));
  if (f.has_test) s.set_test_dataset_id(absl::StrCat("sha256:", f.test_hash));
  s.mutable_input()->set_height(spec.input.height);
  s.mutable_input()->set_width(spec.input.width);
  s.mutable_input()->set_channels(spec.input.channels);
  s.set_color_mode(spec.input.channels == 1 ? v1::COLOR_MODE_GRAYSCALE : v1::COLOR_MODE_RGB);
  s.set_validation_split(val_split);
  s.set_variant(VariantName(spec.variant));
  s.mutable_evaluation()->set_epochs(options.epochs);
  s.mutable_evaluation()->set_learning_rate(options.learning_rate);
  s.mutable_evaluation()->set_batch_size(options.batch_size);
  s.mutable_evaluation()->set_seed(options.seed);
  s.mutable_final_training()->set_epochs(options.epochs);
  s.mutable_final_training()->set_learning_rate(options.learning_rate);
  s.mutable_final_training()->set_batch_size(options.batch_size);
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  *job.mutable_created() = ToTimestamp(created);
  *job.mutable_started() = ToTimestamp(started);
  *job.mutable_finished() = ToTimestamp(finished);
  job.set_num_classes(data.num_classes());
  for (const std::string& name : data.class_names) job.add_class_names(name);
  job.set_num_images(data.size());
  job.set_evaluation_dataset_id(s.dataset_id());

  v1::Candidate& c = *job.add_candidates();
  c.set_k(spec.k);
  c.set_c(spec.c);
  c.set_state(v1::CANDIDATE_STATE_DONE);
  c.set_macc(resources.macc);
  c.set_flash_bytes(f.tflite_bytes);
  c.set_ram_bytes(resources.ram_bytes);
  c.set_best_validation_accuracy(result.best_validation_accuracy);
  c.set_peak_memory_bytes(peak_memory);
  c.set_worker("nanonas-eval");
  c.set_duration_seconds(result.seconds);
  c.set_attempts(1);
  c.set_sequence(0);
  c.set_train_images_per_second(result.train_images_per_second);

  v1::SearchResult& r = *job.mutable_result();
  r.set_found(true);
  r.set_k(spec.k);
  r.set_c(spec.c);
  r.set_validation_accuracy(result.best_validation_accuracy);
  r.set_stop_reason(
      absl::StrCat("no search: nanonas-eval trained the given candidate",
                   test_flag.empty() ? "" : absl::StrCat(" (test set ", test_flag, ")")));
  r.set_macc(resources.macc);
  r.set_flash_bytes(f.tflite_bytes);
  r.set_ram_bytes(resources.ram_bytes);

  v1::FinalTraining& ft = *job.mutable_final_training();
  ft.set_state(v1::CANDIDATE_STATE_DONE);
  for (const EpochStats& e : result.epochs) {
    v1::EpochResult& er = *ft.add_epochs();
    er.set_epoch(e.epoch);
    er.set_train_loss(e.train_loss);
    er.set_train_accuracy(e.train_accuracy);
    er.set_validation_loss(e.validation_loss);
    er.set_validation_accuracy(e.validation_accuracy);
    er.set_seconds(e.seconds);
  }
  ft.set_best_validation_accuracy(result.best_validation_accuracy);
  ft.set_quantized_validation_accuracy(f.quantized_validation_accuracy);
  if (f.has_test) {
    ft.set_has_test_accuracy(true);
    ft.set_float_test_accuracy(f.float_test_accuracy);
    ft.set_quantized_test_accuracy(f.quantized_test_accuracy);
  }
  ft.set_worker("nanonas-eval");
  ft.set_duration_seconds(result.seconds);
  ft.set_flash_bytes(f.tflite_bytes);
  ft.set_ram_bytes(resources.ram_bytes);
  for (const auto& [name, bytes] : artifacts) {
    v1::Artifact& a = *job.add_artifacts();
    a.set_name(name);
    a.set_size_bytes(static_cast<int64_t>(bytes.size()));
    a.set_sha256(Sha256Hex(bytes));
  }
  return job;
}
#endif  // NANONAS_EVAL_HAS_FINAL

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
  // The final-training path: train keeping the best weights, quantize, score, maybe export.
  const bool final_flag = absl::GetFlag(FLAGS_final);
  const std::string export_dir = absl::GetFlag(FLAGS_export);
  const std::string test_flag = absl::GetFlag(FLAGS_test_data);
  const int calibration_images = absl::GetFlag(FLAGS_calibration_images);
  const bool final_mode = final_flag || !export_dir.empty() || !test_flag.empty();

  if (absl::GetFlag(FLAGS_estimate_only)) {
    if (!absl::GetFlag(FLAGS_data).empty()) {
      return UsageError("--estimate-only needs no --data (give --input and --classes)");
    }
    if (final_mode) {
      return UsageError(
          "--estimate-only trains nothing: --final, --export and --test-data need "
          "--data");
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
#ifndef NANONAS_EVAL_HAS_FINAL
  if (final_mode) {
    return UsageError(
        "this build has no exporter (nanonas_export): --final, --export and "
        "--test-data are unavailable");
  }
#else
  absl::StatusOr<TestSource> test_source;
  if (!test_flag.empty()) {
    test_source = ParseTestSource(test_flag);
    if (!test_source.ok()) return UsageError(std::string(test_source.status().message()));
  }
  if (calibration_images < kMinRepresentativeImages) {
    return UsageError(absl::StrCat("--calibration-images must be >= ", kMinRepresentativeImages));
  }
#endif
  TrainOptions options;
  options.epochs = absl::GetFlag(FLAGS_epochs);
  options.learning_rate = static_cast<float>(absl::GetFlag(FLAGS_lr));
  options.batch_size = absl::GetFlag(FLAGS_batch);
  // --final: NanoNAS's final-training defaults where the flag itself was not given.
  if (final_flag) {
    if (!GivenOnCommandLine("epochs")) {
      options.epochs = 100;
    }
    if (!GivenOnCommandLine("lr")) {
      options.learning_rate = 0.01f;
    }
    if (!GivenOnCommandLine("batch")) {
      options.batch_size = 128;
    }
  }
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
  spec.input = *ParseInputShape(input_flag.empty() ? (source->fashion_mnist ? "28x28x1" : "50x50x3")
                                                   : input_flag);
  spec.classes = classes_flag == 0 ? 2 : classes_flag;
  if (absl::StatusOr<Architecture> a = BuildArchitecture(spec); !a.ok()) {
    return UsageError(std::string(a.status().message()));
  }
#ifdef NANONAS_EVAL_HAS_FINAL
  // A bad --export directory fails now, not after the training.
  if (!export_dir.empty()) {
    if (absl::Status s = PrepareExportDir(export_dir); !s.ok()) {
      std::fprintf(stderr, "nanonas-eval: %s\n", std::string(s.message()).c_str());
      return kExitFailure;
    }
  }
#endif
  const absl::Time created = absl::Now();

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
#ifdef NANONAS_EVAL_HAS_FINAL
  // The test set and the calibration's needs are checked before spending time on training.
  std::optional<Dataset> test_data;
  if (!test_flag.empty()) {
    absl::StatusOr<Dataset> t = LoadTestData(*test_source, *data, options.threads);
    if (!t.ok()) {
      std::fprintf(stderr, "nanonas-eval: loading the test data %s: %s\n", test_flag.c_str(),
                   std::string(t.status().message()).c_str());
      return kExitFailure;
    }
    test_data = *std::move(t);
  }
  if (final_mode && static_cast<int64_t>(split->train.size()) < calibration_images) {
    std::fprintf(stderr,
                 "nanonas-eval: quantization calibrates on %d training images (--calibration-"
                 "images, at least %d) but the training split has only %zu (%lld images, "
                 "--val-split %g): give more images or a smaller --val-split\n",
                 calibration_images, kMinRepresentativeImages, split->train.size(),
                 static_cast<long long>(data->size()), val_split);
    return kExitFailure;
  }
#endif
  if (!json) {
    std::cout << DescribeArchitecture(*arch) << "\n"
              << absl::StrFormat(
                     "data: %s, %d images (%d train, %d validation), %d classes, "
                     "hash %s, loaded in %.2f s\n",
                     absl::GetFlag(FLAGS_data), data->size(), split->train.size(),
                     split->validation.size(), data->num_classes(), hash.substr(0, 16),
                     load_seconds)
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
  const absl::Time started = absl::Now();
  absl::StatusOr<TrainResult> result =
      final_mode ? Train(*arch, *data, *split, options, progress, &cancel)
                 : Evaluate(*arch, *data, *split, options, progress, &cancel);
  if (!result.ok()) {
    std::fprintf(stderr, "nanonas-eval: training: %s\n",
                 std::string(result.status().ToString()).c_str());
    return kExitFailure;
  }

#ifdef NANONAS_EVAL_HAS_FINAL
  // ---- Final-training path: quantize, score, export -----------------------------------------
  FinalFigures figures;
  std::vector<std::pair<std::string, std::string>> files;  // name, bytes (written to --export)
  std::string internal_error;
  double export_seconds = 0;
  if (final_mode) {
    const auto export_start = std::chrono::steady_clock::now();
    auto fail = [](const std::string& what, const absl::Status& s) {
      std::fprintf(stderr, "nanonas-eval: %s: %s\n", what.c_str(), s.ToString().c_str());
      return kExitFailure;
    };
    if (!result->best_weights.has_value()) {
      return fail("training", absl::InternalError("Train() returned no best weights"));
    }
    const ModelWeights& weights = *result->best_weights;
    absl::StatusOr<std::vector<int32_t>> predicted =
        Predict(*arch, weights, *data, split->validation, options.threads);
    if (!predicted.ok()) return fail("float inference (validation)", predicted.status());
    figures.float_validation_accuracy = Accuracy(*predicted, *data, split->validation);
    figures.calibration_images = calibration_images;
    absl::StatusOr<Graph> graph =
        QuantizeModel(*arch, weights, *data,
                      RepresentativeImages(split->train, calibration_images, options.seed));
    if (!graph.ok()) return fail("quantization", graph.status());
    absl::StatusOr<double> qval = QuantizedAccuracy(*graph, *data, split->validation);
    if (!qval.ok()) return fail("integer inference (validation)", qval.status());
    figures.quantized_validation_accuracy = *qval;
    if (test_data.has_value()) {
      const std::vector<int64_t> all = AllIndices(*test_data);
      figures.has_test = true;
      figures.test_images = test_data->size();
      figures.test_hash = ContentHash(*test_data);
      absl::StatusOr<std::vector<int32_t>> p =
          Predict(*arch, weights, *test_data, all, options.threads);
      if (!p.ok()) return fail("float inference (test)", p.status());
      figures.float_test_accuracy = Accuracy(*p, *test_data, all);
      absl::StatusOr<double> q = QuantizedAccuracy(*graph, *test_data, all);
      if (!q.ok()) return fail("integer inference (test)", q.status());
      figures.quantized_test_accuracy = *q;
    }
    absl::StatusOr<std::string> tflite = SerializeTflite(*graph);
    if (!tflite.ok()) return fail("writing the .tflite model", tflite.status());
    absl::StatusOr<int64_t> predicted_flash = PredictFlashBytes(*arch);
    if (!predicted_flash.ok()) return fail("predicting the Flash size", predicted_flash.status());
    figures.tflite_bytes = static_cast<int64_t>(tflite->size());
    figures.predicted_flash_bytes = *predicted_flash;
    // The resource model promises the file's exact size before training: a difference is a bug.
    if (figures.tflite_bytes != figures.predicted_flash_bytes ||
        (resources.flash_exact && resources.flash_bytes != figures.tflite_bytes)) {
      internal_error =
          absl::StrCat("INTERNAL: the exported model.tflite is ", figures.tflite_bytes,
                       " bytes but the predicted Flash is ", figures.predicted_flash_bytes,
                       " (resource model: ", resources.flash_bytes, "); this is a bug in nanonas");
    }
    if (!export_dir.empty()) {
      const std::string array_name = ModelArrayName(absl::StrCat("k", spec.k, "_c", spec.c), "");
      files.emplace_back("model.tflite", *tflite);
      files.emplace_back(
          "model.h",
          MakeCHeader(*tflite, array_name,
                      absl::StrCat(DescribeArchitecture(*arch),
                                   "\nfull-integer uint8 TFLite model, written by nanonas-eval")));
      nanonas::v1::Job job = ReportJob(spec, absl::GetFlag(FLAGS_data), *data, hash, test_flag,
                                       val_split, options, *result, resources, figures, files,
                                       created, started, absl::Now(), PeakRssBytes());
      std::string svg = SearchPathSvg(job);
      nanonas::v1::Artifact& a = *job.add_artifacts();
      a.set_name("search-path.svg");
      a.set_size_bytes(static_cast<int64_t>(svg.size()));
      a.set_sha256(Sha256Hex(svg));
      files.emplace_back("report.json", SearchReportJson(job));
      files.emplace_back("search-path.svg", std::move(svg));
      for (const auto& [name, bytes] : files) {
        const std::string path = (std::filesystem::path(export_dir) / name).string();
        if (absl::Status s = WriteBinaryFile(path, bytes); !s.ok()) return fail("export", s);
      }
    }
    export_seconds = SecondsSince(export_start);
  }
#endif
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
    j["settings"] = {{"epochs", options.epochs},         {"learning_rate", options.learning_rate},
                     {"batch_size", options.batch_size}, {"seed", options.seed},
                     {"validation_split", val_split},    {"final", final_flag},
                     {"keep_best_weights", final_mode}};
#ifdef NANONAS_EVAL_HAS_FINAL
    if (final_mode) {
      j["float_validation_accuracy"] = figures.float_validation_accuracy;
      j["quantized_validation_accuracy"] = figures.quantized_validation_accuracy;
      j["calibration_images"] = figures.calibration_images;
      if (figures.has_test) {
        j["test_data"] = test_flag;
        j["test_images"] = figures.test_images;
        j["test_dataset_hash"] = figures.test_hash;
        j["float_test_accuracy"] = figures.float_test_accuracy;
        j["quantized_test_accuracy"] = figures.quantized_test_accuracy;
      }
      j["tflite_bytes"] = figures.tflite_bytes;
      j["predicted_flash_bytes"] = figures.predicted_flash_bytes;
      j["flash_matches_prediction"] = internal_error.empty();
      j["export_seconds"] = export_seconds;
      if (!export_dir.empty()) {
        nlohmann::ordered_json e;
        e["dir"] = export_dir;
        e["files"] = nlohmann::ordered_json::array();
        for (const auto& [name, bytes] : files) {
          e["files"].push_back({{"name", name},
                                {"path", (std::filesystem::path(export_dir) / name).string()},
                                {"bytes", bytes.size()}});
        }
        j["export"] = e;
      }
    }
#endif
    std::cout << j.dump() << "\n";
  } else {
    std::cout << absl::StrFormat("best validation accuracy %.4f (epoch %d)\n",
                                 result->best_validation_accuracy, result->best_epoch)
              << ResourcesText(resources) << "\n"
              << absl::StrFormat("training %.2f s, %.0f images/s (%d threads), peak memory %s\n",
                                 result->seconds, result->train_images_per_second, options.threads,
                                 FormatBytes(peak));
#ifdef NANONAS_EVAL_HAS_FINAL
    if (final_mode) {
      std::cout << absl::StrFormat(
          "validation (%d images): float accuracy %.4f, quantized (integer inference) %.4f; "
          "calibrated on %d training images\n",
          split->validation.size(), figures.float_validation_accuracy,
          figures.quantized_validation_accuracy, figures.calibration_images);
      if (figures.has_test) {
        std::cout << absl::StrFormat(
            "test %s (%d images): float accuracy %.4f, quantized (integer inference) %.4f\n",
            test_flag, figures.test_images, figures.float_test_accuracy,
            figures.quantized_test_accuracy);
      }
      std::cout << absl::StrFormat("model.tflite %d bytes, predicted Flash %d bytes: %s\n",
                                   figures.tflite_bytes, figures.predicted_flash_bytes,
                                   internal_error.empty() ? "equal" : "DIFFERENT");
      for (const auto& [name, bytes] : files) {
        std::cout << absl::StrFormat("wrote %s (%d bytes)\n",
                                     (std::filesystem::path(export_dir) / name).string(),
                                     bytes.size());
      }
    }
#endif
  }
#ifdef NANONAS_EVAL_HAS_FINAL
  if (!internal_error.empty()) {
    std::fprintf(stderr, "nanonas-eval: %s\n", internal_error.c_str());
    return kExitFailure;
  }
#endif
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
      "  nanonas-eval --data DIR|fashion-mnist[:N] --k 4 --c 2 [--final] [--export DIR]\n"
      "               [--test-data DIR|fashion-mnist-test[:N]] [--calibration-images 150]\n"
      "    (final training: best validation epoch kept, uint8 quantization, float and\n"
      "     quantized accuracies; --export writes model.tflite, model.h, report.json and\n"
      "     search-path.svg)\n"
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
