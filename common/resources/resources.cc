#include "common/resources/resources.h"

#include "absl/strings/str_cat.h"
#include "common/arch/mcu_model.h"
#include "common/export/mcu_flash.h"

namespace nanonas {

McuFigures ComputeMcuFigures(const Architecture& arch) {
  const McuResources r = EstimateMcuResources(arch, ExportedFlashOptions());
  return McuFigures{r.macc, r.flash_bytes, r.ram_bytes};
}

std::vector<Violation> FindMcuViolations(const McuFigures& figures, const ResourceLimits& limits) {
  std::vector<Violation> out;
  auto check = [&](const char* name, int64_t value, int64_t limit) {
    if (limit > 0 && value > limit) out.push_back(Violation{name, value, limit, value - limit});
  };
  check("ram_bytes", figures.ram_bytes, limits.ram_bytes);
  check("flash_bytes", figures.flash_bytes, limits.flash_bytes);
  check("macc", figures.macc, limits.macc);
  return out;
}

std::optional<Violation> FindHostViolation(int64_t need_bytes, int64_t limit_bytes) {
  if (limit_bytes <= 0 || need_bytes <= limit_bytes) return std::nullopt;
  return Violation{"host_memory_bytes", need_bytes, limit_bytes, need_bytes - limit_bytes};
}

ResourceVerdict JudgeFigures(const McuFigures& figures, const ResourceLimits& limits,
                             const std::function<int64_t()>& host_bytes) {
  ResourceVerdict verdict;
  verdict.figures = figures;
  verdict.violations = FindMcuViolations(figures, limits);
  if (!verdict.violations.empty()) {
    verdict.fit = ResourceVerdict::Fit::kMcuInfeasible;
    return verdict;
  }
  if (limits.host_memory_bytes > 0 && host_bytes) {
    if (auto v = FindHostViolation(host_bytes(), limits.host_memory_bytes)) {
      verdict.fit = ResourceVerdict::Fit::kHostInfeasible;
      verdict.violations.push_back(*std::move(v));
    }
  }
  return verdict;
}

ResourceVerdict JudgeCandidate(const Architecture& arch, const ResourceLimits& limits,
                               int64_t dataset_bytes, const HostTrainingOptions& training) {
  return JudgeFigures(ComputeMcuFigures(arch), limits,
                      [&] { return EstimateHostTrainingBytes(arch, dataset_bytes, training); });
}

}  // namespace nanonas
