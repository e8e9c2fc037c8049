#include "client/targets.h"

#include "absl/strings/ascii.h"

namespace nanonas {

const std::vector<BoardPreset>& BoardPresets() {
  // RAM and Flash: the vendors' datasheets. CoreMark: NanoNAS's own search scripts where they
  // state it (AndreaMattiaGaravagno/NanoNAS, SensorsLetters24 search.py: "STM32L010RBT6: 75
  // CoreMark, 20 kiB RAM, 128 kiB Flash"; ColabNAS/NanoNAS defaults: "STM32L412KBU3: 273
  // CoreMark, 40 kiB RAM, 128 kiB Flash"), else the vendor's published score: ST product pages
  // (STM32L151: 93 CoreMark at 32 MHz; STM32F412: 339 at 100 MHz; STM32F446: 608 at 180 MHz),
  // Microchip SAM D21 datasheet (2.46 CoreMark/MHz at 48 MHz = 118).
  static const std::vector<BoardPreset> kBoards = {
      {"NUCLEO-L010RB", "STM32L010RB (Cortex-M0+, 32 MHz)", 20 * 1024, 128 * 1024, 75,
       "NanoNAS search.py (SensorsLetters24); ST DS12322"},
      {"NUCLEO-L412KB", "STM32L412KB (Cortex-M4, 80 MHz)", 40 * 1024, 128 * 1024, 273,
       "NanoNAS/ColabNAS defaults; ST DS12469"},
      {"STM32L151UC", "STM32L151UC (Cortex-M3, 32 MHz)", 32 * 1024, 256 * 1024, 93,
       "ST DS8124 (STM32L151xC); ST STM32L1 CoreMark"},
      {"Arduino-Nano-33-IoT", "ATSAMD21G18A (Cortex-M0+, 48 MHz)", 32 * 1024, 256 * 1024, 118,
       "Microchip SAM D21 datasheet (2.46 CoreMark/MHz x 48 MHz)"},
      {"STM32F412", "STM32F412xG (Cortex-M4F, 100 MHz)", 256 * 1024, 1024 * 1024, 339,
       "ST DS11139; ST STM32F412 CoreMark"},
      {"STM32F446RE", "STM32F446RE (Cortex-M4F, 180 MHz)", 128 * 1024, 512 * 1024, 608,
       "ST DS10693; ST STM32F446 CoreMark"},
  };
  return kBoards;
}

namespace {
std::string Canonical(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '-' || c == '_' || c == ' ') continue;
    out.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
  }
  return out;
}
}  // namespace

const BoardPreset* FindBoard(absl::string_view name) {
  const std::string want = Canonical(name);
  for (const BoardPreset& b : BoardPresets()) {
    if (Canonical(b.name) == want) return &b;
  }
  return nullptr;
}

}  // namespace nanonas
