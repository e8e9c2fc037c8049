// Feasibility: MCU limits first, then the host memory estimate.
#include "server/coordinator/feasibility.h"

#include "gtest/gtest.h"

namespace nanonas::coordinator {
namespace {

namespace v1 = nanonas::v1;

TEST(FindViolationsTest, ReportsEachBrokenLimitAndIgnoresZeroLimits) {
  v1::Constraints limits;
  limits.set_ram_bytes(1000);
  limits.set_flash_bytes(0);  // no limit
  limits.set_macc(10);
  McuFigures f;
  f.ram_bytes = 1500;
  f.flash_bytes = 1'000'000;
  f.macc = 10;
  auto vs = FindViolations(limits, f);
  ASSERT_EQ(vs.size(), 1u);
  EXPECT_EQ(vs[0].resource(), "ram_bytes");
  EXPECT_EQ(vs[0].excess(), 500);
}

v1::Job JobWithLimits(int64_t ram, int64_t host) {
  v1::Job job;
  job.mutable_spec()->mutable_input()->set_height(50);
  job.mutable_spec()->mutable_input()->set_width(50);
  job.mutable_spec()->mutable_input()->set_channels(3);
  job.mutable_spec()->mutable_constraints()->set_ram_bytes(ram);
  job.mutable_spec()->mutable_constraints()->set_host_memory_bytes(host);
  job.set_num_images(10);
  job.set_num_classes(2);
  return job;
}

CandidateSpec Spec(int k) {
  CandidateSpec s;
  s.k = k;
  s.input.height = 50;
  s.input.width = 50;
  s.input.channels = 3;
  return s;
}

TEST(MakeFeasibilityTest, McuLimitsComeBeforeTheHostMemoryCheck) {
  ResourceModel resources = [](const Architecture& a) -> absl::StatusOr<McuFigures> {
    McuFigures f;
    f.ram_bytes = 100 * a.k();
    return f;
  };
  int host_calls = 0;
  HostMemoryModel host = [&](const Architecture& a, int64_t pixel_bytes,
                             const v1::EvaluationSettings&) {
    ++host_calls;
    EXPECT_EQ(pixel_bytes, 10 * 50 * 50 * 3);
    return int64_t{1000} * a.k();
  };
  FeasibilityFunction fits = MakeFeasibility(JobWithLimits(500, 3000), resources, host);
  auto ok = fits(Spec(2));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->fit, FeasibilityVerdict::Fit::kFits);
  auto host_no = fits(Spec(4));
  ASSERT_TRUE(host_no.ok());
  EXPECT_EQ(host_no->fit, FeasibilityVerdict::Fit::kHostInfeasible);
  const int calls_before = host_calls;
  auto mcu_no = fits(Spec(6));
  ASSERT_TRUE(mcu_no.ok());
  EXPECT_EQ(mcu_no->fit, FeasibilityVerdict::Fit::kInfeasible);
  EXPECT_EQ(host_calls, calls_before) << "no host estimate for a candidate the MCU refuses";
}

}  // namespace
}  // namespace nanonas::coordinator
