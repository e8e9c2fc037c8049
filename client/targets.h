// Board presets for `nanonas submit --target BOARD`: the boards of the NanoNAS papers with their
// RAM and Flash from the datasheets and the MACC bound from the NanoNAS authors' rule of thumb,
// CoreMark score x 10^4 (NanoNAS README, "How to use": "a good starting point is given by
// multiplying the CoreMark score of your microcontroller by 10000").
#ifndef NANONAS_CLIENT_TARGETS_H_
#define NANONAS_CLIENT_TARGETS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace nanonas {

struct BoardPreset {
  std::string name;   // "NUCLEO-L412KB"
  std::string mcu;    // "STM32L412KB (Cortex-M4, 80 MHz)"
  int64_t ram_bytes;  // SRAM
  int64_t flash_bytes;
  int coremark;        // CoreMark score the MACC bound derives from
  std::string source;  // where the figures come from
  int64_t macc() const { return static_cast<int64_t>(coremark) * 10000; }
};

const std::vector<BoardPreset>& BoardPresets();

// Case-insensitive, ignoring '-', '_' and spaces ("nucleo_l412kb", "Arduino Nano 33 IoT",
// "arduino-nano-33-iot"). nullptr when unknown.
const BoardPreset* FindBoard(absl::string_view name);

}  // namespace nanonas

#endif  // NANONAS_CLIENT_TARGETS_H_
