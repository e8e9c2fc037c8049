// Bridges a .tflite graph read by tflite_reader.h to the MCU resource model
// (common/arch/mcu_model.h) so that the arena planner and the persistent-allocation walk can run on
// any file's graph, e.g. a converter's reference model or nanonas's own export.
//
// Thread-safety: pure functions, safe to call from any thread.
#ifndef NANONAS_COMMON_TFLITE_TFLITE_MCU_H_
#define NANONAS_COMMON_TFLITE_TFLITE_MCU_H_

#include "absl/status/statusor.h"
#include "common/arch/mcu_model.h"
#include "common/tflite/tflite_reader.h"

namespace nanonas {

// The file's graph as an McuGraph: same tensors (constant = has buffer data), same ops, scratch
// sizes by TFLM's kernels (CONV_2D 3x3: 36 * Cin, MEAN: 4 * C). INVALID_ARGUMENT for an op or
// tensor type the model does not cover, or a graph without exactly one input and one output.
absl::StatusOr<McuGraph> McuGraphFromTflite(const TfliteGraph& graph);

// Arena, persistent part and RAM of a file's graph as stm32tflm reports them; macc is left 0 and
// flash_bytes is the file size (flash_exact).
absl::StatusOr<McuResources> McuResourcesOfTflite(const TfliteGraph& graph);

}  // namespace nanonas

#endif  // NANONAS_COMMON_TFLITE_TFLITE_MCU_H_
