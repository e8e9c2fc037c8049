#include "server/coordinator/feasibility.h"

#include <utility>

#include "common/api/violations.h"
#include "common/base/status_macros.h"
#include "common/resources/resources.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

ResourceLimits LimitsOf(const v1::Constraints& c) {
  return ResourceLimits{c.ram_bytes(), c.flash_bytes(), c.macc(), c.host_memory_bytes()};
}

}  // namespace

std::vector<v1::Violation> FindViolations(const v1::Constraints& limits,
                                          const McuFigures& figures) {
  std::vector<v1::Violation> out;
  for (const Violation& v : FindMcuViolations(figures, LimitsOf(limits))) {
    out.push_back(ToProto(v));
  }
  return out;
}

FeasibilityFunction MakeFeasibility(const v1::Job& job, ResourceModel resources,
                                    HostMemoryModel host) {
  const ResourceLimits limits = LimitsOf(job.spec().constraints());
  const v1::EvaluationSettings settings = job.spec().evaluation();
  const auto& in = job.spec().input();
  const int64_t pixel_bytes = job.num_images() * int64_t{in.height()} * in.width() * in.channels();
  return [=, resources = std::move(resources),
          host = std::move(host)](const CandidateSpec& spec) -> absl::StatusOr<FeasibilityVerdict> {
    NANONAS_ASSIGN_OR_RETURN(Architecture arch, BuildArchitecture(spec));
    NANONAS_ASSIGN_OR_RETURN(McuFigures figures, resources(arch));
    std::function<int64_t()> need;
    if (host) need = [&] { return host(arch, pixel_bytes, settings); };
    return FeasibilityVerdict::FromResources(JudgeFigures(figures, limits, need));
  };
}

}  // namespace nanonas::coordinator
