// EstimateTrainingMemoryBytes (which forwards to the pure EstimateHostTrainingBytes of
// common/resources) against the peak resident memory (ru_maxrss) of a real evaluation,
// measured in a fresh child process (this binary re-executed with a filter), so that the figure
// includes the process baseline exactly as the estimate claims to.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "worker/engine/trainer.h"

namespace nanonas {
namespace {

constexpr char kChildEnv[] = "NANONAS_ENGINE_MEMORY_CHILD";

struct Case {
  int k, c, images, batch;
};

Architecture Arch(const Case& cs) {
  CandidateSpec spec;
  spec.k = cs.k;
  spec.c = cs.c;
  spec.input = {50, 50, 3};
  auto arch = BuildArchitecture(spec);
  EXPECT_TRUE(arch.ok());
  return *arch;
}

TrainOptions Options(const Case& cs) {
  TrainOptions opt;
  opt.epochs = 1;
  opt.batch_size = cs.batch;
  return opt;
}

// The child process's whole work (see main below): one evaluation, then its peak RSS on stdout.
int RunChild(const char* env) {
  Case cs{};
  if (std::sscanf(env, "%d,%d,%d,%d", &cs.k, &cs.c, &cs.images, &cs.batch) != 4) return 2;
  const Dataset data = engine::testing::MakeStripes(cs.images, 50, 50, 3, 1);
  const Split split = engine::testing::HeadSplit(data, cs.images * 7 / 10);
  auto r = Evaluate(Arch(cs), data, split, Options(cs));
  if (!r.ok()) {
    std::fprintf(stderr, "evaluation failed: %s\n", r.status().ToString().c_str());
    return 1;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("NANONAS_MAXRSS_KB=%ld\n", usage.ru_maxrss);
  return 0;
}

int64_t MeasureChildPeakBytes(const Case& cs) {
  const std::string cmd = absl::StrCat(kChildEnv, "=", cs.k, ",", cs.c, ",", cs.images, ",",
                                       cs.batch, " /proc/", getpid(), "/exe");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char line[512];
  int64_t kb = -1;
  while (std::fgets(line, sizeof(line), pipe) != nullptr) {
    std::string s(line);
    const std::string key = "NANONAS_MAXRSS_KB=";
    if (s.rfind(key, 0) == 0) {
      int64_t v = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(s.substr(key.size())), &v)) kb = v;
    }
  }
  if (pclose(pipe) != 0) return -1;
  return kb * 1024;
}

class MemoryTest : public ::testing::TestWithParam<Case> {};

TEST_P(MemoryTest, EstimateBoundsMeasuredPeakWithinFactorThree) {
  const Case cs = GetParam();
  const int64_t measured = MeasureChildPeakBytes(cs);
  ASSERT_GT(measured, 0) << "child process failed";
  const int64_t estimate = EstimateTrainingMemoryBytes(
      Arch(cs), static_cast<int64_t>(cs.images) * 50 * 50 * 3, Options(cs));
  std::printf("(%d,%d) %d images batch %d: measured %.1f MiB, estimate %.1f MiB\n", cs.k, cs.c,
              cs.images, cs.batch, measured / 1048576.0, estimate / 1048576.0);
  EXPECT_GE(estimate, measured);
  EXPECT_LE(estimate, 3 * measured);
}

INSTANTIATE_TEST_SUITE_P(Candidates, MemoryTest,
                         ::testing::Values(Case{4, 2, 4000, 16}, Case{16, 3, 600, 128}));

TEST(MemoryEstimateTest, GrowsWithDatasetBatchAndModel) {
  const Case small{1, 0, 100, 16}, big{16, 3, 100, 16};
  const int64_t base = EstimateTrainingMemoryBytes(Arch(small), 1 << 20, Options(small));
  EXPECT_GT(EstimateTrainingMemoryBytes(Arch(small), 100 << 20, Options(small)), base + (99 << 20));
  EXPECT_GT(EstimateTrainingMemoryBytes(Arch(big), 1 << 20, Options(big)), base);
  Case big_batch = big;
  big_batch.batch = 128;
  EXPECT_GT(EstimateTrainingMemoryBytes(Arch(big), 1 << 20, Options(big_batch)),
            EstimateTrainingMemoryBytes(Arch(big), 1 << 20, Options(big)));
}

}  // namespace
}  // namespace nanonas

// With the child variable set this binary is the measured child process: it runs one evaluation
// and exits before GoogleTest starts, so the child's peak RSS holds nothing but that evaluation.
int main(int argc, char** argv) {
  if (const char* env = std::getenv(nanonas::kChildEnv)) return nanonas::RunChild(env);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
