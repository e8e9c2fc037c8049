// The figures and verdict pieces of the resource model (common/resources/resources.h), as plain
// structs with no dependencies, so that the search state machine (server/search) and the
// coordinator can carry them without linking the model itself.
//
//   McuFigures f{macc, flash_bytes, ram_bytes};          // one struct for the three MCU numbers
//   Violation v{"ram_bytes", value, limit, value - limit};
//   ResourceVerdict verdict;                              // fit, figures, violations
//
// Plain values; thread-compatible.
#ifndef NANONAS_COMMON_RESOURCES_FIGURES_H_
#define NANONAS_COMMON_RESOURCES_FIGURES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace nanonas {

// A candidate's MCU figures (0 when unknown): MACC, Flash (the exported .tflite file) and RAM
// (the reference tool's figure), as common/arch/mcu_model.h computes them.
struct McuFigures {
  int64_t macc = 0;
  int64_t flash_bytes = 0;
  int64_t ram_bytes = 0;
  bool operator==(const McuFigures& o) const {
    return macc == o.macc && flash_bytes == o.flash_bytes && ram_bytes == o.ram_bytes;
  }
};

// Which limit a candidate broke and by how much (mirrors nanonas.v1.Violation).
struct Violation {
  std::string resource;  // "ram_bytes", "flash_bytes", "macc", "host_memory_bytes"
  int64_t value = 0;     // the candidate's figure
  int64_t limit = 0;     // the limit it broke
  int64_t excess = 0;    // value - limit
  bool operator==(const Violation& o) const {
    return resource == o.resource && value == o.value && limit == o.limit && excess == o.excess;
  }
};

// A job's limits (mirrors nanonas.v1.Constraints); 0 means no limit.
struct ResourceLimits {
  int64_t ram_bytes = 0;
  int64_t flash_bytes = 0;
  int64_t macc = 0;
  int64_t host_memory_bytes = 0;  // peak memory of training the candidate on the searching host
};

// What the resource model says about a candidate (JudgeFigures / JudgeCandidate in
// common/resources/resources.h).
struct ResourceVerdict {
  enum class Fit {
    kFits,
    kMcuInfeasible,   // breaks an MCU limit (RAM, Flash, MACC)
    kHostInfeasible,  // fits the MCU, but its training would not fit the searching host
  };
  Fit fit = Fit::kFits;
  McuFigures figures;
  std::vector<Violation> violations;  // non-empty unless kFits
};

}  // namespace nanonas

#endif  // NANONAS_COMMON_RESOURCES_FIGURES_H_
