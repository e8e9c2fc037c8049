// The resource model in one place: does candidate (k, c) fit a job's limits, with which figures
// and which violations. MCU figures come from common/arch/mcu_model.h (RAM byte-exact) with Flash
// the exact size of the .tflite file nanonas exports (common/export/mcu_flash.h); the host memory
// of training is the pure estimate of common/resources/host_memory.h. No oneDNN, no I/O.
//
//   ResourceLimits limits{.ram_bytes = 64 << 10, .flash_bytes = 256 << 10};
//   ResourceVerdict v = JudgeCandidate(arch, limits, dataset_bytes, {.batch_size = 16});
//   if (v.fit != ResourceVerdict::Fit::kFits) LOG << DescribeViolations(v.violations);  // api
//
// Texts of violations: common/api/violations.h. Order: MCU violations in the order RAM, Flash,
// MACC; the host limit is checked only when every MCU limit holds.
//
// Pure functions; thread-safe.
#ifndef NANONAS_COMMON_RESOURCES_RESOURCES_H_
#define NANONAS_COMMON_RESOURCES_RESOURCES_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/arch/architecture.h"
#include "common/resources/figures.h"
#include "common/resources/host_memory.h"

namespace nanonas {

// MACC and RAM as EstimateMcuResources gives them; Flash as ExportedFlashOptions gives it.
// REQUIRES: `arch` comes from BuildArchitecture.
McuFigures ComputeMcuFigures(const Architecture& arch);

// The MCU limits `figures` breaks, in the order ram_bytes, flash_bytes, macc (a limit of 0 is
// no limit; a figure equal to its limit fits).
std::vector<Violation> FindMcuViolations(const McuFigures& figures, const ResourceLimits& limits);

// The host_memory_bytes violation of needing `need_bytes` under `limit_bytes` (none when the
// limit is 0 or not exceeded).
std::optional<Violation> FindHostViolation(int64_t need_bytes, int64_t limit_bytes);

// The verdict for known MCU figures. `host_bytes` gives the host training memory; it is called
// only when every MCU limit holds and limits.host_memory_bytes > 0 (null: no host check).
ResourceVerdict JudgeFigures(const McuFigures& figures, const ResourceLimits& limits,
                             const std::function<int64_t()>& host_bytes);

// Everything from the architecture: ComputeMcuFigures, then EstimateHostTrainingBytes of training
// it on `dataset_bytes` decoded pixels with `training`.
ResourceVerdict JudgeCandidate(const Architecture& arch, const ResourceLimits& limits,
                               int64_t dataset_bytes, const HostTrainingOptions& training);

}  // namespace nanonas

#endif  // NANONAS_COMMON_RESOURCES_RESOURCES_H_
