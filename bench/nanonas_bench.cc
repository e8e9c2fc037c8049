// nanonas-bench: measures nanonas's training engine for bench/run.sh (issue 2, "Benchmarks").
//
// Each mode prints one JSON object on stdout; bench/run.py runs the modes in alternation with the
// PyTorch peer (bench/torch_peer.py) and prints the tables. Not a test: it never fails on a figure.
//
//   nanonas-bench throughput --k 4 --c 2 --input 50x50x3 --threads 2 [--seconds 1 --infer-seconds
//   0.5]
//       Steady-state training images/s of Evaluate() on synthetic data (batch 16, Adam 1e-3), timed
//       between the per-batch progress callbacks after a warm-up (setup, validation and epoch ends
//       excluded), then cancelled: over the whole window and from the median step; inference
//       images/s of Predict() with trained weights.
//   nanonas-bench accuracy --k 4 --c 2 --seed 1 [--epochs 3 --validation 0.3 --limit 0
//                          --split-out FILE]
//       A Fashion-MNIST (training set, 28x28x1) Evaluate(); writes the split it used to FILE
//       (int64 n_train, n_val, train indices, validation indices) for the peer to reuse.
//   nanonas-bench memory --k 16 --c 3 --input 50x50x3 --images 10000 [--epochs 3]
//       A 3-epoch Evaluate() on synthetic images with a 0.3 validation split; reports its own
//       ru_maxrss (bench/run.py also measures it from outside with wait4).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/arch/architecture.h"
#include "common/base/status_macros.h"
#include "common/data/dataset.h"
#include "common/resources/host_memory.h"
#include "nlohmann/json.hpp"
#include "worker/engine/trainer.h"

namespace nanonas {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t SelfMaxRssKib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;  // KiB on Linux
}

// --name value flags with defaults; unknown flags are errors.
class Flags {
 public:
  explicit Flags(std::map<std::string, std::string> defaults) : values_(std::move(defaults)) {}

  absl::Status Parse(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0 || i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("expected '--flag value', got '", arg, "'"));
      }
      std::string name = arg.substr(2);
      for (char& ch : name) {
        if (ch == '_') ch = '-';
      }
      if (values_.count(name) == 0) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
      }
      values_[name] = argv[++i];
    }
    return absl::OkStatus();
  }
  const std::string& Str(const std::string& name) const { return values_.at(name); }
  absl::StatusOr<int64_t> Int(const std::string& name) const {
    int64_t v = 0;
    if (!absl::SimpleAtoi(Str(name), &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " wants an integer, got '", Str(name), "'"));
    }
    return v;
  }
  absl::StatusOr<double> Double(const std::string& name) const {
    double v = 0;
    if (!absl::SimpleAtod(Str(name), &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " wants a number, got '", Str(name), "'"));
    }
    return v;
  }

 private:
  std::map<std::string, std::string> values_;
};

absl::StatusOr<Architecture> ArchFromFlags(const Flags& f, const InputShape& input, int classes) {
  CandidateSpec spec;
  NANONAS_ASSIGN_OR_RETURN(int64_t k, f.Int("k"));
  NANONAS_ASSIGN_OR_RETURN(int64_t c, f.Int("c"));
  spec.k = static_cast<int>(k);
  spec.c = static_cast<int>(c);
  spec.input = input;
  spec.classes = classes;
  return BuildArchitecture(spec);
}

// n random uint8 images with random labels, written in place (no second copy of the pixels).
Dataset SyntheticDataset(int64_t n, const InputShape& shape, int classes, uint64_t seed) {
  Dataset d;
  d.shape = shape;
  d.images.resize(static_cast<size_t>(n * shape.height * shape.width * shape.channels));
  d.labels.resize(static_cast<size_t>(n));
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i + 8 <= d.images.size(); i += 8) {
    uint64_t r = rng();
    for (int b = 0; b < 8; ++b) d.images[i + b] = static_cast<uint8_t>(r >> (8 * b));
  }
  for (auto& label : d.labels) label = static_cast<int32_t>(rng() % classes);
  for (int i = 0; i < classes; ++i) d.class_names.push_back(absl::StrCat("class", i));
  return d;
}

std::vector<int64_t> Range(int64_t begin, int64_t end) {
  std::vector<int64_t> v(static_cast<size_t>(end - begin));
  std::iota(v.begin(), v.end(), begin);
  return v;
}

Json EpochsJson(const TrainResult& r) {
  Json epochs = Json::array();
  for (const EpochStats& e : r.epochs) {
    epochs.push_back({{"epoch", e.epoch},
                      {"train_loss", e.train_loss},
                      {"train_accuracy", e.train_accuracy},
                      {"validation_loss", e.validation_loss},
                      {"validation_accuracy", e.validation_accuracy},
                      {"seconds", e.seconds}});
  }
  return epochs;
}

// Steady-state training speed measured from Evaluate's per-batch progress callbacks.
struct TrainTiming {
  double images_per_second = 0;              // over the whole timed window
  double median_step_images_per_second = 0;  // from the median batch step
  int64_t timed_batches = 0;
};

// A long Evaluate on `split` (opt.epochs large, progress after every batch), timed from one batch
// callback to the next within an epoch after the warm-up, cancelled once `seconds` are measured.
absl::StatusOr<TrainTiming> TimeTraining(const Architecture& arch, const Dataset& data,
                                         const Split& split, const TrainOptions& opt,
                                         double seconds, double warmup) {
  CancelFlag cancel;
  Clock::time_point first, last;
  int last_epoch = -1;
  int64_t last_batch = -1, timed_batches = 0, callbacks = 0;
  double timed = 0;
  std::vector<double> steps;  // seconds of each timed batch
  bool warm = false;
  auto on_progress = [&](const Progress& p) {
    if (p.kind != Progress::Kind::kBatch) return;
    const Clock::time_point now = Clock::now();
    if (++callbacks == 1) first = now;
    if (!warm) {
      // Warm-up: at least 3 batches and `warmup` seconds after the first callback are not timed.
      warm = callbacks >= 4 && std::chrono::duration<double>(now - first).count() >= warmup;
    } else if (p.epoch == last_epoch && p.batch == last_batch + 1) {
      const double step = std::chrono::duration<double>(now - last).count();
      timed += step;
      steps.push_back(step);
      ++timed_batches;
      if (timed >= seconds && timed_batches >= 5) cancel.Cancel();
    }
    last_epoch = p.epoch;
    last_batch = p.batch;
    last = Clock::now();  // the callback's own time is not charged to the next batch
  };
  absl::StatusOr<TrainResult> run = Evaluate(arch, data, split, opt, on_progress, &cancel);
  if (run.ok()) {
    return absl::InternalError("the timed Evaluate finished without being cancelled");
  }
  if (!absl::IsCancelled(run.status())) return run.status();
  if (timed_batches == 0) return absl::InternalError("no batch progress callbacks to time");
  const int64_t batch = opt.batch_size;
  TrainTiming t;
  t.images_per_second = static_cast<double>(timed_batches * batch) / timed;
  // The median step resists the stalls other processes cause on a shared machine.
  std::nth_element(steps.begin(), steps.begin() + steps.size() / 2, steps.end());
  t.median_step_images_per_second = static_cast<double>(batch) / steps[steps.size() / 2];
  t.timed_batches = timed_batches;
  return t;
}

struct InferTiming {
  double images_per_second = 0;
  int64_t call_images = 0;  // images per timed Predict call
};

// Weights from a short real training, then Predict on the synthetic images: a warm-up call on a
// few batches, then a call sized for about `infer_seconds`, repeated until that window is full.
absl::StatusOr<InferTiming> TimeInference(const Architecture& arch, const Dataset& data,
                                          const Split& split, const TrainOptions& opt,
                                          int64_t images, double infer_seconds) {
  const int64_t batch = opt.batch_size;
  const int threads = opt.threads;
  Split small;
  small.train = Range(0, std::min<int64_t>(images, 4 * batch));
  small.validation = split.validation;
  TrainOptions short_opt = opt;
  short_opt.epochs = 1;
  short_opt.progress_every_batches = 0;
  short_opt.keep_best_weights = true;
  NANONAS_ASSIGN_OR_RETURN(TrainResult trained, Evaluate(arch, data, small, short_opt));
  if (!trained.best_weights.has_value()) {
    return absl::InternalError("Evaluate with keep_best_weights returned no weights");
  }
  const ModelWeights& weights = *trained.best_weights;
  std::vector<int64_t> idx = Range(0, std::min<int64_t>(images, 16 * batch));
  Clock::time_point t0 = Clock::now();
  NANONAS_ASSIGN_OR_RETURN(std::vector<int32_t> warm_pred,
                           Predict(arch, weights, data, idx, threads));
  const double rough_ips = static_cast<double>(idx.size()) / SecondsSince(t0);
  int64_t n = static_cast<int64_t>(rough_ips * infer_seconds);
  n = std::max<int64_t>(batch, std::min<int64_t>(n, images));
  idx = Range(0, n);
  double infer_timed = 0;
  int64_t inferred = 0;
  while (infer_timed < infer_seconds) {  // a cheap call is repeated until the window is full
    t0 = Clock::now();
    NANONAS_ASSIGN_OR_RETURN(std::vector<int32_t> pred, Predict(arch, weights, data, idx, threads));
    infer_timed += SecondsSince(t0);
    inferred += static_cast<int64_t>(pred.size());
  }
  InferTiming t;
  t.images_per_second = static_cast<double>(inferred) / infer_timed;
  t.call_images = n;
  return t;
}

absl::StatusOr<Json> Throughput(const Flags& f) {
  NANONAS_ASSIGN_OR_RETURN(InputShape input, ParseInputShape(f.Str("input")));
  NANONAS_ASSIGN_OR_RETURN(int64_t classes, f.Int("classes"));
  NANONAS_ASSIGN_OR_RETURN(Architecture arch, ArchFromFlags(f, input, static_cast<int>(classes)));
  NANONAS_ASSIGN_OR_RETURN(int64_t threads, f.Int("threads"));
  NANONAS_ASSIGN_OR_RETURN(int64_t batch, f.Int("batch"));
  NANONAS_ASSIGN_OR_RETURN(int64_t images, f.Int("images"));
  NANONAS_ASSIGN_OR_RETURN(double seconds, f.Double("seconds"));
  NANONAS_ASSIGN_OR_RETURN(double infer_seconds, f.Double("infer-seconds"));
  NANONAS_ASSIGN_OR_RETURN(double warmup, f.Double("warmup"));
  NANONAS_ASSIGN_OR_RETURN(int64_t seed, f.Int("seed"));
  if (batch < 1 || images < 2 * batch || threads < 1) {
    return absl::InvalidArgumentError("need --batch >= 1, --images >= 2 batches, --threads >= 1");
  }

  // `images` synthetic training images plus one validation batch.
  const Dataset data = SyntheticDataset(images + batch, input, static_cast<int>(classes), seed);
  Split split;
  split.train = Range(0, images);
  split.validation = Range(images, images + batch);
  TrainOptions opt;
  opt.epochs = 1000;
  opt.batch_size = static_cast<int>(batch);
  opt.seed = static_cast<uint64_t>(seed);
  opt.threads = static_cast<int>(threads);
  opt.progress_every_batches = 1;
  NANONAS_ASSIGN_OR_RETURN(TrainTiming train,
                           TimeTraining(arch, data, split, opt, seconds, warmup));
  NANONAS_ASSIGN_OR_RETURN(InferTiming infer,
                           TimeInference(arch, data, split, opt, images, infer_seconds));

  Json out = {{"framework", "nanonas"},
              {"k", arch.k()},
              {"c", arch.c()},
              {"input", FormatInputShape(input)},
              {"threads", threads},
              {"batch", batch},
              {"channels", arch.channels},
              {"macc", arch.macc},
              {"train_images_per_second", train.images_per_second},
              {"train_images_per_second_median_step", train.median_step_images_per_second},
              {"timed_batches", train.timed_batches},
              {"infer_images_per_second", infer.images_per_second},
              {"predict_call_images", infer.call_images},
              {"self_maxrss_kib", SelfMaxRssKib()}};
  return out;
}

absl::Status WriteSplit(const Split& split, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::NotFoundError(absl::StrCat("cannot write split file ", path));
  const int64_t header[2] = {static_cast<int64_t>(split.train.size()),
                             static_cast<int64_t>(split.validation.size())};
  out.write(reinterpret_cast<const char*>(header), sizeof(header));
  out.write(reinterpret_cast<const char*>(split.train.data()),
            static_cast<std::streamsize>(split.train.size() * sizeof(int64_t)));
  out.write(reinterpret_cast<const char*>(split.validation.data()),
            static_cast<std::streamsize>(split.validation.size() * sizeof(int64_t)));
  if (!out) return absl::InternalError(absl::StrCat("short write to ", path));
  return absl::OkStatus();
}

// --epochs, --batch, --threads and the seed as the options of one Evaluate() without progress.
absl::StatusOr<TrainOptions> TrainOptionsFromFlags(const Flags& f, int64_t seed) {
  TrainOptions opt;
  NANONAS_ASSIGN_OR_RETURN(int64_t epochs, f.Int("epochs"));
  NANONAS_ASSIGN_OR_RETURN(int64_t batch, f.Int("batch"));
  NANONAS_ASSIGN_OR_RETURN(int64_t threads, f.Int("threads"));
  opt.epochs = static_cast<int>(epochs);
  opt.batch_size = static_cast<int>(batch);
  opt.seed = static_cast<uint64_t>(seed);
  opt.threads = static_cast<int>(threads);
  opt.progress_every_batches = 0;
  return opt;
}

absl::StatusOr<Json> Accuracy(const Flags& f) {
  NANONAS_ASSIGN_OR_RETURN(Dataset data, LoadFashionMnist(true, f.Str("data-dir")));
  NANONAS_ASSIGN_OR_RETURN(int64_t limit, f.Int("limit"));
  if (limit > 0 && limit < data.size()) data = Subset(data, Range(0, limit));
  NANONAS_ASSIGN_OR_RETURN(Architecture arch, ArchFromFlags(f, data.shape, data.num_classes()));
  NANONAS_ASSIGN_OR_RETURN(double validation, f.Double("validation"));
  NANONAS_ASSIGN_OR_RETURN(int64_t seed, f.Int("seed"));
  NANONAS_ASSIGN_OR_RETURN(Split split,
                           SplitTrainValidation(data, validation, static_cast<uint64_t>(seed)));
  if (!f.Str("split-out").empty()) NANONAS_RETURN_IF_ERROR(WriteSplit(split, f.Str("split-out")));
  NANONAS_ASSIGN_OR_RETURN(const TrainOptions opt, TrainOptionsFromFlags(f, seed));
  NANONAS_ASSIGN_OR_RETURN(TrainResult r, Evaluate(arch, data, split, opt));
  Json out = {
      {"framework", "nanonas"},
      {"k", arch.k()},
      {"c", arch.c()},
      {"seed", seed},
      {"threads", opt.threads},
      {"train_images", split.train.size()},
      {"validation_images", split.validation.size()},
      {"epochs", EpochsJson(r)},
      {"best_validation_accuracy", r.best_validation_accuracy},
      {"final_validation_accuracy", r.epochs.empty() ? 0.0 : r.epochs.back().validation_accuracy},
      {"seconds", r.seconds},
      {"train_images_per_second", r.train_images_per_second}};
  return out;
}

absl::StatusOr<Json> Memory(const Flags& f) {
  NANONAS_ASSIGN_OR_RETURN(InputShape input, ParseInputShape(f.Str("input")));
  NANONAS_ASSIGN_OR_RETURN(int64_t classes, f.Int("classes"));
  NANONAS_ASSIGN_OR_RETURN(Architecture arch, ArchFromFlags(f, input, static_cast<int>(classes)));
  NANONAS_ASSIGN_OR_RETURN(int64_t images, f.Int("images"));
  NANONAS_ASSIGN_OR_RETURN(int64_t seed, f.Int("seed"));
  NANONAS_ASSIGN_OR_RETURN(double validation, f.Double("validation"));
  const int64_t rss_before_data = SelfMaxRssKib();
  const Dataset data = SyntheticDataset(images, input, static_cast<int>(classes), seed);
  NANONAS_ASSIGN_OR_RETURN(Split split,
                           SplitTrainValidation(data, validation, static_cast<uint64_t>(seed)));
  NANONAS_ASSIGN_OR_RETURN(const TrainOptions opt, TrainOptionsFromFlags(f, seed));
  NANONAS_ASSIGN_OR_RETURN(TrainResult r, Evaluate(arch, data, split, opt));
  Json out = {{"framework", "nanonas"},
              {"k", arch.k()},
              {"c", arch.c()},
              {"input", FormatInputShape(input)},
              {"images", images},
              {"threads", opt.threads},
              {"dataset_bytes", static_cast<int64_t>(data.images.size())},
              {"best_validation_accuracy", r.best_validation_accuracy},
              {"seconds", r.seconds},
              {"train_images_per_second", r.train_images_per_second},
              {"estimated_bytes",
               EstimateHostTrainingBytes(arch, static_cast<int64_t>(data.images.size()),
                                         HostTrainingOptions{opt.batch_size, opt.threads})},
              {"maxrss_before_data_kib", rss_before_data},
              {"self_maxrss_kib", SelfMaxRssKib()}};
  return out;
}

int Main(int argc, char** argv) {
  const std::string usage =
      "usage: nanonas-bench throughput|accuracy|memory [--flag value ...] (see bench/README.md)";
  if (argc < 2) {
    std::cerr << usage << "\n";
    return 2;
  }
  const std::string mode = argv[1];
  Flags flags({{"k", "4"},
               {"c", "2"},
               {"input", "50x50x3"},
               {"classes", "10"},
               {"threads", "2"},
               {"batch", "16"},
               {"seed", "1"},
               {"images", mode == "memory" ? "10000" : "2048"},
               {"seconds", "1.0"},
               {"infer-seconds", "0.5"},
               {"warmup", "0.2"},
               {"epochs", "3"},
               {"validation", "0.3"},
               {"limit", "0"},
               {"split-out", ""},
               {"data-dir", "/usr/share/datasets/fashion-mnist"}});
  absl::Status parsed = flags.Parse(argc, argv, 2);
  if (!parsed.ok()) {
    std::cerr << "nanonas-bench: " << parsed.message() << "\n" << usage << "\n";
    return 2;
  }
  absl::StatusOr<Json> result;
  if (mode == "throughput") {
    result = Throughput(flags);
  } else if (mode == "accuracy") {
    result = Accuracy(flags);
  } else if (mode == "memory") {
    result = Memory(flags);
  } else {
    std::cerr << "nanonas-bench: unknown mode '" << mode << "'\n" << usage << "\n";
    return 2;
  }
  if (!result.ok()) {
    std::cerr << "nanonas-bench " << mode << ": " << result.status() << "\n";
    return 1;
  }
  std::cout << result->dump() << std::endl;
  return 0;
}

}  // namespace
}  // namespace nanonas

int main(int argc, char** argv) { return nanonas::Main(argc, argv); }
