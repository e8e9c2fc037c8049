// The resource model's verdicts (common/resources/resources.h): figures as the MCU model and the
// exporter give them, and the coordinator's violations, order and texts.
#include "common/resources/resources.h"

#include "common/arch/mcu_model.h"
#include "common/export/mcu_flash.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

Architecture Arch(int k, int c, InputShape input = {50, 50, 3}) {
  CandidateSpec spec;
  spec.k = k;
  spec.c = c;
  spec.input = input;
  auto arch = BuildArchitecture(spec);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return *arch;
}

TEST(ResourceMcuFiguresTest, AreTheMcuModelsWithTheExportedFlash) {
  for (const InputShape& in : {InputShape{28, 28, 1}, InputShape{50, 50, 3}}) {
    for (int k : {1, 4, 16}) {
      for (int c = 0; c <= 3; ++c) {
        const Architecture arch = Arch(k, c, in);
        const McuResources r = EstimateMcuResources(arch, ExportedFlashOptions());
        const McuFigures f = ComputeMcuFigures(arch);
        EXPECT_EQ(f, (McuFigures{r.macc, r.flash_bytes, r.ram_bytes}))
            << DescribeArchitecture(arch);
        EXPECT_EQ(f.flash_bytes, ExportedFlashBytes(arch));
        EXPECT_TRUE(r.flash_exact);
      }
    }
  }
}

TEST(ResourceViolationsTest, ListsBrokenLimitsInRamFlashMaccOrder) {
  const McuFigures f{/*macc=*/3000, /*flash_bytes=*/2000, /*ram_bytes=*/1000};
  ResourceLimits limits;
  limits.ram_bytes = 999;
  limits.flash_bytes = 1999;
  limits.macc = 2999;
  const std::vector<Violation> want = {
      {"ram_bytes", 1000, 999, 1}, {"flash_bytes", 2000, 1999, 1}, {"macc", 3000, 2999, 1}};
  EXPECT_EQ(FindMcuViolations(f, limits), want);
}

TEST(ResourceViolationsTest, ZeroLimitIsNoLimitAndEqualFits) {
  const McuFigures f{3000, 2000, 1000};
  EXPECT_TRUE(FindMcuViolations(f, ResourceLimits{}).empty());
  ResourceLimits limits;
  limits.ram_bytes = 1000;
  limits.flash_bytes = 2000;
  limits.macc = 3000;
  EXPECT_TRUE(FindMcuViolations(f, limits).empty());
}

TEST(ResourceHostViolationTest, OnlyAboveAPositiveLimit) {
  EXPECT_FALSE(FindHostViolation(100, 0).has_value());
  EXPECT_FALSE(FindHostViolation(100, 100).has_value());
  ASSERT_TRUE(FindHostViolation(101, 100).has_value());
  EXPECT_EQ(*FindHostViolation(101, 100), (Violation{"host_memory_bytes", 101, 100, 1}));
}

TEST(ResourceVerdictTest, McuViolationsSkipTheHostEstimate) {
  ResourceLimits limits;
  limits.ram_bytes = 10;
  limits.host_memory_bytes = 10;
  bool asked = false;
  const ResourceVerdict v = JudgeFigures({1, 1, 11}, limits, [&] {
    asked = true;
    return int64_t{100};
  });
  EXPECT_FALSE(asked);
  EXPECT_EQ(v.fit, ResourceVerdict::Fit::kMcuInfeasible);
  EXPECT_EQ(v.figures, (McuFigures{1, 1, 11}));
  EXPECT_EQ(v.violations, (std::vector<Violation>{{"ram_bytes", 11, 10, 1}}));
}

TEST(ResourceVerdictTest, HostLimitAppliesWhenTheMcuFits) {
  ResourceLimits limits;
  limits.ram_bytes = 10;
  limits.host_memory_bytes = 50;
  const ResourceVerdict host = JudgeFigures({1, 1, 10}, limits, [] { return int64_t{60}; });
  EXPECT_EQ(host.fit, ResourceVerdict::Fit::kHostInfeasible);
  EXPECT_EQ(host.violations, (std::vector<Violation>{{"host_memory_bytes", 60, 50, 10}}));
  EXPECT_EQ(JudgeFigures({1, 1, 10}, limits, [] { return int64_t{50}; }).fit,
            ResourceVerdict::Fit::kFits);
  EXPECT_EQ(JudgeFigures({1, 1, 10}, limits, nullptr).fit, ResourceVerdict::Fit::kFits);
  limits.host_memory_bytes = 0;
  bool asked = false;
  EXPECT_EQ(JudgeFigures({1, 1, 10}, limits,
                         [&] {
                           asked = true;
                           return int64_t{1} << 40;
                         })
                .fit,
            ResourceVerdict::Fit::kFits);
  EXPECT_FALSE(asked);
}

TEST(ResourceVerdictTest, JudgeCandidateCombinesTheFiguresAndTheHostEstimate) {
  const Architecture arch = Arch(16, 3);
  const int64_t dataset = 1000LL * 50 * 50 * 3;
  const HostTrainingOptions training{128, 2};
  const int64_t need = EstimateHostTrainingBytes(arch, dataset, training);
  ResourceLimits limits;
  limits.ram_bytes = 1 << 30;
  limits.host_memory_bytes = need - 1;
  const ResourceVerdict v = JudgeCandidate(arch, limits, dataset, training);
  EXPECT_EQ(v.fit, ResourceVerdict::Fit::kHostInfeasible);
  EXPECT_EQ(v.figures, ComputeMcuFigures(arch));
  EXPECT_EQ(v.violations, (std::vector<Violation>{{"host_memory_bytes", need, need - 1, 1}}));
  limits.host_memory_bytes = need;
  EXPECT_EQ(JudgeCandidate(arch, limits, dataset, training).fit, ResourceVerdict::Fit::kFits);
}

}  // namespace
}  // namespace nanonas
