#include "common/export/mcu_flash.h"

#include "common/export/tflite_writer.h"

namespace nanonas {

int64_t ExportedFlashBytes(const Architecture& arch) {
  absl::StatusOr<int64_t> bytes = PredictFlashBytes(arch);
  return bytes.ok() ? *bytes : -1;
}

McuModelOptions ExportedFlashOptions() {
  McuModelOptions options;
  options.flash_bytes = ExportedFlashBytes;
  return options;
}

}  // namespace nanonas
