// The pure host-memory estimate (common/resources/host_memory.h) kept honest three ways:
//   - its per-convolution formulas bound what oneDNN itself says (scratchpads, weights layouts,
//     Winograd copies) over the convolutions of the search space;
//   - the whole estimate stays close to the former oneDNN-based one (kept below as the reference);
//   - it bounds the peak resident memory (ru_maxrss) of real evaluations, each measured in a fresh
//     child process (this binary re-executed), over a grid of (k, c), inputs and batch sizes;
//     and, with dataset_mapped, the peak anonymous memory (RssAnon, sampled every millisecond) of
//     evaluations on a memory-mapped dataset file, as a worker's evaluation child runs them.
#include "common/resources/host_memory.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/data/mapped.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "worker/engine/conv.h"
#include "worker/engine/omp_threads.h"
#include "worker/engine/trainer.h"

namespace nanonas {
namespace {

constexpr char kChildEnv[] = "NANONAS_HOST_MEMORY_CHILD";

Architecture Arch(int k, int c, const InputShape& input) {
  CandidateSpec spec;
  spec.k = k;
  spec.c = c;
  spec.input = input;
  auto arch = BuildArchitecture(spec);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return *arch;
}

// The two inputs of the issue: MNIST-like and the NanoNAS default.
const InputShape kInputs[] = {{28, 28, 1}, {50, 50, 3}};

// ---- The former oneDNN-based estimate, the reference for the pure one -------------------------
// (worker/engine/trainer.cc before the resource model; only its conv figures asked oneDNN.)
int64_t OneDnnEstimate(const Architecture& arch, int64_t dataset_bytes, int batch_size,
                       int threads) {
  constexpr int64_t kBaseline = 32LL << 20;
  constexpr int64_t kPerPrimitive = 256LL << 10;
  const int64_t batch = std::max(1, batch_size);
  const int64_t f = sizeof(float);
  const InputShape& in = arch.spec.input;
  int64_t act_floats = static_cast<int64_t>(in.height) * in.width * in.channels;
  int64_t max_act = 0, side_bytes = 0, conv_weights = 0, other_params = 0, convs = 0;
  int64_t scratch = 0, conv_copies = 0;
  dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  for (const Layer& l : arch.layers) {
    const int64_t out = static_cast<int64_t>(l.out_h) * l.out_w * l.out_c;
    if (l.kind == LayerKind::kRescale || l.kind == LayerKind::kReLU ||
        l.kind == LayerKind::kSoftmax) {
      continue;
    }
    act_floats += out;
    max_act = std::max(max_act, out);
    if (l.kind == LayerKind::kMaxPool2x2) side_bytes += out;
    if (l.kind == LayerKind::kDropout) side_bytes += f * out;
    if (l.kind == LayerKind::kConv3x3) {
      engine::ConvLayer conv;
      const engine::ConvShape shape{
          static_cast<int>(batch), l.in_h, l.in_w, l.in_c, l.out_c, l.fused_relu, true, true};
      EXPECT_TRUE(conv.Init(cpu, shape, nullptr).ok());
      scratch = std::max<int64_t>(scratch, conv.scratchpad_bytes());
      const int64_t weights = conv.master_weights_desc().get_size() / f;
      conv_copies += static_cast<int64_t>(conv.activation_copy_bytes());
      conv_weights += weights + l.out_c;
      ++convs;
    } else if (l.kind == LayerKind::kBatchNorm) {
      other_params += 2 * l.in_c;
    } else if (l.kind == LayerKind::kDense) {
      other_params += static_cast<int64_t>(l.in_c) * l.out_c + l.out_c;
    }
  }
  const int64_t activations = f * batch * (act_floats + 2 * max_act) + batch * side_bytes;
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, batch));
  scratch *= parts;
  const int64_t params = f * ((4 + 6 * parts) * conv_weights + 4 * other_params) +
                         f * (parts - 1) * (conv_weights + other_params) +
                         2 * f * (conv_weights + other_params);
  const int64_t primitives = kPerPrimitive * convs * 3 * 3 * parts;
  const int64_t images = dataset_bytes / std::max<int64_t>(1, in.height * in.width * in.channels);
  const int64_t indices = images * (8 + 8 + 4);
  const int64_t variable = activations + params + scratch + primitives + indices + 3 * conv_copies;
  return kBaseline + dataset_bytes + variable + variable / 4;
}

TEST(HostMemoryWinogradTest, IsTheEngineRule) {
  for (int h : {1, 6, 9, 10, 12, 19, 20, 25, 50}) {
    for (int cin : {1, 3, 8, 16, 24, 32, 48, 64}) {
      for (int cout : {4, 16, 30, 32, 48, 96}) {
        const engine::ConvShape s{16, h, h, cin, cout, true, true, true};
        EXPECT_EQ(WinogradShape(h, h, cin, cout), engine::WinogradPays(s))
            << h << "x" << h << " " << cin << "->" << cout;
      }
    }
  }
}

// Every convolution of (k, c) for k = 1..24 and both inputs, at the batch sizes of the issue.
TEST(HostMemoryConvFormulasTest, BoundWhatOneDnnSaysOverTheSearchSpace) {
  engine::ScopedOmpThreads one(1);
  dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  double worst_scratch = 0, worst_weights = 0;
  int checked = 0;
  for (const InputShape& in : kInputs) {
    for (int k = 1; k <= 24; k += (k < 8 ? 1 : 4)) {
      const Architecture arch = Arch(k, MaxCells(in), in);
      for (const Layer& l : arch.layers) {
        if (l.kind != LayerKind::kConv3x3) continue;
        for (int n : {16, 128}) {
          engine::ConvLayer conv;
          ASSERT_TRUE(
              conv.Init(cpu, {n, l.in_h, l.in_w, l.in_c, l.out_c, true, true, true}, nullptr).ok());
          const ConvFootprintShape s{n, l.in_h, l.in_w, l.in_c, l.out_c, 1};
          const std::string what =
              absl::StrCat("n", n, " ", l.in_h, "x", l.in_w, " ", l.in_c, "->", l.out_c);
          const int64_t scratch = static_cast<int64_t>(conv.scratchpad_bytes());
          const int64_t weights = conv.master_weights_desc().get_size() / sizeof(float);
          EXPECT_LE(scratch, ConvScratchpadBytes(s)) << what;
          EXPECT_LE(weights, ConvWeightLayoutFloats(l.in_c, l.out_c)) << what;
          EXPECT_LE(static_cast<int64_t>(conv.activation_copy_bytes()), ConvActivationCopyBytes(s))
              << what;
          worst_scratch = std::max(worst_scratch, 1.0 * scratch / ConvScratchpadBytes(s));
          worst_weights =
              std::max(worst_weights, 1.0 * weights / ConvWeightLayoutFloats(l.in_c, l.out_c));
          ++checked;
        }
      }
    }
  }
  std::printf("%d convolutions: oneDNN's scratchpad at most %.2f of the formula, weights %.2f\n",
              checked, worst_scratch, worst_weights);
}

// The pure estimate never falls below the oneDNN-based one and stays within kMaxOverOld of it
// (the Winograd scratchpad counts the whole-batch transforms oneDNN may pick on another machine,
// which weighs most for small networks at batch 128).
TEST(HostMemoryEstimateTest, StaysCloseToTheOneDnnBasedEstimate) {
  constexpr double kMaxOverOld = 1.3;  // measured here: 1.003 .. 1.242
  engine::ScopedOmpThreads one(1);
  double worst = 0, least = 1e9;
  for (const InputShape& in : kInputs) {
    const int64_t dataset = 1000LL * in.height * in.width * in.channels;
    for (int k = 1; k <= 24; k += (k < 8 ? 1 : 4)) {
      for (int c = 0; c <= MaxCells(in); ++c) {
        for (int batch : {16, 128}) {
          const Architecture arch = Arch(k, c, in);
          const int64_t old_bytes = OneDnnEstimate(arch, dataset, batch, 1);
          const int64_t pure = EstimateHostTrainingBytes(arch, dataset, {batch, 1});
          EXPECT_GE(pure, old_bytes) << DescribeArchitecture(arch) << " batch " << batch;
          EXPECT_LE(pure, kMaxOverOld * old_bytes)
              << DescribeArchitecture(arch) << " batch " << batch;
          worst = std::max(worst, 1.0 * pure / old_bytes);
          least = std::min(least, 1.0 * pure / old_bytes);
        }
      }
    }
  }
  std::printf("pure / oneDNN-based estimate: %.3f .. %.3f\n", least, worst);
}

TEST(HostMemoryEstimateTest, AMappedDatasetsPixelsAreNotCounted) {
  const InputShape in{50, 50, 3};
  const int64_t pixels = 10000LL * 50 * 50 * 3;
  HostTrainingOptions mapped{16, 1};
  mapped.dataset_mapped = true;
  const int64_t owned_bytes = EstimateHostTrainingBytes(Arch(4, 2, in), pixels, {16, 1});
  const int64_t mapped_bytes = EstimateHostTrainingBytes(Arch(4, 2, in), pixels, mapped);
  EXPECT_EQ(owned_bytes - mapped_bytes, pixels);
  // Its labels and indices still are: more images, more memory.
  EXPECT_GT(EstimateHostTrainingBytes(Arch(4, 2, in), 10 * pixels, mapped), mapped_bytes);
}

TEST(HostMemoryEstimateTest, GrowsWithDatasetBatchThreadsAndModel) {
  const InputShape in{50, 50, 3};
  const int64_t base = EstimateHostTrainingBytes(Arch(1, 0, in), 1 << 20, {16, 1});
  EXPECT_GT(EstimateHostTrainingBytes(Arch(1, 0, in), 100 << 20, {16, 1}), base + (99 << 20));
  EXPECT_GT(EstimateHostTrainingBytes(Arch(16, 3, in), 1 << 20, {16, 1}), base);
  EXPECT_GT(EstimateHostTrainingBytes(Arch(16, 3, in), 1 << 20, {128, 1}),
            EstimateHostTrainingBytes(Arch(16, 3, in), 1 << 20, {16, 1}));
  EXPECT_GT(EstimateHostTrainingBytes(Arch(16, 3, in), 1 << 20, {128, 4}),
            EstimateHostTrainingBytes(Arch(16, 3, in), 1 << 20, {128, 1}));
}

// ---- Measured peaks -----------------------------------------------------------------------------

struct Case {
  int k, c, h, w, ch, batch;
  int mapped = 0;  // 1: the dataset is a mapped file and the anonymous peak is measured
};

int Images(const Case& cs) { return 3 * cs.batch + 10; }  // 2+ training batches, a validation one

// This process's RssAnon (bytes), 0 if unknown.
int64_t OwnRssAnon() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    long long kib = 0;
    if (std::sscanf(line.c_str(), "RssAnon: %lld kB", &kib) == 1) return kib * 1024;
  }
  return 0;
}

// The highest RssAnon seen while it lives, sampled every millisecond on a thread of its own.
class AnonymousPeakSampler {
 public:
  AnonymousPeakSampler()
      : thread_([this] {
          while (!stop_) {
            peak_ = std::max<int64_t>(peak_, OwnRssAnon());
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
        }) {}
  int64_t Stop() {
    stop_ = true;
    thread_.join();
    return std::max<int64_t>(peak_, OwnRssAnon());
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> peak_{0};
  std::thread thread_;
};

// The stripes of `cs` written to a file and mapped back (the file is unlinked; the mapping stays).
Dataset MappedStripes(const Case& cs) {
  const std::string path = absl::StrCat("/tmp/nanonas-host-memory-", getpid(), ".nnds");
  {
    const std::string blob =
        SerializeDataset(engine::testing::MakeStripes(Images(cs), cs.h, cs.w, cs.ch, 1));
    std::ofstream(path, std::ios::binary).write(blob.data(), blob.size());
  }
  absl::StatusOr<Dataset> mapped = MapDatasetFile(path, true);
  std::remove(path.c_str());
  if (!mapped.ok()) std::fprintf(stderr, "%s\n", mapped.status().ToString().c_str());
  return mapped.ok() ? *mapped : Dataset();
}

// The child's whole work (see main below): one evaluation, then its peak RSS on stdout (and its
// sampled peak anonymous memory when the dataset is mapped).
int RunChild(const char* env) {
  Case cs{};
  if (std::sscanf(env, "%d,%d,%d,%d,%d,%d,%d", &cs.k, &cs.c, &cs.h, &cs.w, &cs.ch, &cs.batch,
                  &cs.mapped) != 7) {
    return 2;
  }
  const Dataset data = cs.mapped ? MappedStripes(cs)
                                 : engine::testing::MakeStripes(Images(cs), cs.h, cs.w, cs.ch, 1);
  const Split split = engine::testing::HeadSplit(data, Images(cs) * 7 / 10);
  TrainOptions opt;
  opt.epochs = 1;
  opt.batch_size = cs.batch;
  AnonymousPeakSampler sampler;
  auto r = Evaluate(Arch(cs.k, cs.c, {cs.h, cs.w, cs.ch}), data, split, opt);
  const int64_t anonymous = sampler.Stop();
  if (!r.ok()) {
    std::fprintf(stderr, "evaluation failed: %s\n", r.status().ToString().c_str());
    return 1;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("NANONAS_MAXRSS_KB=%ld\n",
              cs.mapped ? static_cast<long>(anonymous / 1024) : usage.ru_maxrss);
  return 0;
}

int64_t MeasureChildPeakBytes(const Case& cs) {
  const std::string cmd =
      absl::StrCat(kChildEnv, "=", cs.k, ",", cs.c, ",", cs.h, ",", cs.w, ",", cs.ch, ",", cs.batch,
                   ",", cs.mapped, " /proc/", getpid(), "/exe");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char line[512];
  int64_t kb = -1;
  const std::string key = "NANONAS_MAXRSS_KB=";
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    const std::string s(line);
    int64_t v = 0;
    if (s.rfind(key, 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(s.substr(key.size())), &v)) {
      kb = v;
    }
  }
  if (pclose(pipe) != 0) return -1;
  return kb * 1024;
}

// The estimate is an upper bound of the measured peak, and its part above the fixed process
// baseline it assumes (32 MiB: a worker child maps ~58 MiB, this test binary ~12 MiB) is at most
// kMaxOverMeasured times the measured peak. Measured here (1 thread, oneDNN 2.6.3, AVX-512):
// estimate / peak from 1.41 ((24,2) 50x50x3 batch 128) to 3.14 ((4,2) 28x28x1 batch 16, where the
// baseline is most of the estimate); (estimate - 32 MiB) / peak from 0.31 to 1.53.
constexpr double kMaxOverMeasured = 2.0;
constexpr int64_t kAssumedBaseline = 32LL << 20;

class HostMemoryMeasuredPeakTest : public ::testing::TestWithParam<Case> {};

TEST_P(HostMemoryMeasuredPeakTest, EstimateBoundsTheMeasuredPeak) {
  const Case cs = GetParam();
  const int64_t measured = MeasureChildPeakBytes(cs);
  ASSERT_GT(measured, 0) << "child process failed";
  const int64_t dataset = static_cast<int64_t>(Images(cs)) * cs.h * cs.w * cs.ch;
  HostTrainingOptions options{cs.batch, 1};
  options.dataset_mapped = cs.mapped != 0;
  const int64_t estimate =
      EstimateHostTrainingBytes(Arch(cs.k, cs.c, {cs.h, cs.w, cs.ch}), dataset, options);
  std::printf(
      "(%d,%d) %dx%dx%d batch %d%s: measured %.1f MiB, estimate %.1f MiB (x%.2f, x%.2f "
      "above the baseline)\n",
      cs.k, cs.c, cs.h, cs.w, cs.ch, cs.batch, cs.mapped ? " mapped (anonymous)" : "",
      measured / 1048576.0, estimate / 1048576.0, 1.0 * estimate / measured,
      1.0 * (estimate - kAssumedBaseline) / measured);
  EXPECT_GE(estimate, measured);
  // The tightness bound is for the resident peak. The anonymous peak lacks the mapped libraries
  // that the baseline covers (its own baseline is ~4 MiB), so small candidates sit far below the
  // estimate: measured here, mapped estimate / anonymous peak from 1.52 ((24,2) batch 128) to 9.6
  // ((1,0) batch 16), (estimate - 32 MiB) / peak from 1.30 to 2.2.
  if (!cs.mapped) EXPECT_LE(estimate - kAssumedBaseline, kMaxOverMeasured * measured);
}

std::vector<Case> Grid() {
  std::vector<Case> cases;
  for (const InputShape& in : kInputs) {
    for (const auto& [k, c] :
         std::vector<std::pair<int, int>>{{1, 0}, {4, 2}, {8, 1}, {16, 3}, {24, 2}}) {
      for (int batch : {16, 128}) {
        cases.push_back({k, c, in.height, in.width, in.channels, batch, 0});
        // The worker's case: a mapped dataset, its anonymous peak against the mapped estimate.
        if (in.channels == 3) cases.push_back({k, c, in.height, in.width, in.channels, batch, 1});
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Grid, HostMemoryMeasuredPeakTest, ::testing::ValuesIn(Grid()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const Case& c = info.param;
                           return absl::StrCat("k", c.k, "c", c.c, "_", c.h, "x", c.w, "x", c.ch,
                                               "_b", c.batch, c.mapped ? "_mapped" : "");
                         });

}  // namespace
}  // namespace nanonas

// With the child variable set this binary is the measured child process: it runs one evaluation
// and exits before GoogleTest starts, so the child's peak RSS holds nothing but that evaluation.
int main(int argc, char** argv) {
  if (const char* env = std::getenv(nanonas::kChildEnv)) return nanonas::RunChild(env);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
