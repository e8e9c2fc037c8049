#include "server/coordinator/feasibility.h"

#include <utility>

#include "common/base/status_macros.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

Violation FromProto(const v1::Violation& v) {
  Violation out;
  out.resource = v.resource();
  out.value = v.value();
  out.limit = v.limit();
  out.excess = v.excess();
  return out;
}

}  // namespace

std::vector<v1::Violation> FindViolations(const v1::Constraints& limits,
                                          const McuFigures& figures) {
  std::vector<v1::Violation> out;
  auto check = [&](const char* name, int64_t value, int64_t limit) {
    if (limit > 0 && value > limit) {
      v1::Violation v;
      v.set_resource(name);
      v.set_value(value);
      v.set_limit(limit);
      v.set_excess(value - limit);
      out.push_back(v);
    }
  };
  check("ram_bytes", figures.ram_bytes, limits.ram_bytes());
  check("flash_bytes", figures.flash_bytes, limits.flash_bytes());
  check("macc", figures.macc, limits.macc());
  return out;
}

FeasibilityFunction MakeFeasibility(const v1::Job& job, ResourceModel resources,
                                    HostMemoryModel host) {
  const v1::Constraints limits = job.spec().constraints();
  const v1::EvaluationSettings settings = job.spec().evaluation();
  const auto& in = job.spec().input();
  const int64_t pixel_bytes = job.num_images() * int64_t{in.height()} * in.width() * in.channels();
  return [=, resources = std::move(resources),
          host = std::move(host)](const CandidateSpec& spec) -> absl::StatusOr<FeasibilityVerdict> {
    NANONAS_ASSIGN_OR_RETURN(Architecture arch, BuildArchitecture(spec));
    NANONAS_ASSIGN_OR_RETURN(McuFigures f, resources(arch));
    CandidateFigures figures;
    figures.macc = f.macc;
    figures.flash_bytes = f.flash_bytes;
    figures.ram_bytes = f.ram_bytes;
    std::vector<Violation> violations;
    for (const auto& v : FindViolations(limits, f)) violations.push_back(FromProto(v));
    if (!violations.empty()) return FeasibilityVerdict::Infeasible(violations, figures);
    if (limits.host_memory_bytes() > 0 && host) {
      const int64_t need = host(arch, pixel_bytes, settings);
      if (need > limits.host_memory_bytes()) {
        Violation v;
        v.resource = "host_memory_bytes";
        v.value = need;
        v.limit = limits.host_memory_bytes();
        v.excess = need - v.limit;
        return FeasibilityVerdict::HostInfeasible({v}, figures);
      }
    }
    return FeasibilityVerdict::Fits(figures);
  };
}

}  // namespace nanonas::coordinator
