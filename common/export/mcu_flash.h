// Wiring the exporter's exact file size into the MCU resource model (common/arch/mcu_model.h):
//
//   McuResources r = EstimateMcuResources(arch, ExportedFlashOptions());
//   // r.flash_bytes == size of the .tflite nanonas writes for arch; r.flash_exact == true
#ifndef NANONAS_COMMON_EXPORT_MCU_FLASH_H_
#define NANONAS_COMMON_EXPORT_MCU_FLASH_H_

#include <cstdint>

#include "common/arch/architecture.h"
#include "common/arch/mcu_model.h"

namespace nanonas {

// PredictFlashBytes without a Status: -1 if the architecture cannot be exported (cannot happen
// for an Architecture that BuildArchitecture produced).
int64_t ExportedFlashBytes(const Architecture& arch);

// McuModelOptions whose flash_bytes is ExportedFlashBytes.
McuModelOptions ExportedFlashOptions();

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_MCU_FLASH_H_
