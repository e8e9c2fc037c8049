// The six reference models of tests/data/reference-models/README.md (carried in the repository
// with their MIT licence) and where to find them. Tests that need the files FAIL (never skip) when
// a file is missing, saying where they looked.
#ifndef NANONAS_TESTS_MCU_REFERENCE_MODELS_H_
#define NANONAS_TESTS_MCU_REFERENCE_MODELS_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace nanonas {

struct ReferenceModel {
  const char* file;
  int k, c;
  std::vector<int> channels;
  int height, width, input_channels, classes;
  int64_t flash, ram, arena, persistent;
};

// The README's table, figures as stm32tflm prints them for these files.
inline const std::vector<ReferenceModel>& ReferenceModels() {
  static const std::vector<ReferenceModel> kModels = {
      {"prime23-imagenette2-160.tflite",
       10,
       4,
       {10, 20, 30, 38, 43},
       50,
       50,
       3,
       10,
       46848,
       39424,
       32624,
       6368},
      {"prime23-melanoma-cancer.tflite",
       3,
       4,
       {3, 6, 9, 12, 14},
       50,
       50,
       3,
       2,
       14336,
       20992,
       15120,
       5600},
      {"prime23-visual-wake-words.tflite",
       6,
       4,
       {6, 12, 18, 23, 26},
       50,
       50,
       3,
       2,
       24216,
       29184,
       22624,
       5920},
      {"vww-arduino-nano-33-iot.tflite",
       5,
       4,
       {5, 10, 15, 19, 22},
       50,
       50,
       3,
       2,
       20200,
       26624,
       20128,
       5824},
      {"vww-nucleo-l010rb.tflite", 3, 3, {3, 6, 9, 12}, 50, 50, 3, 2, 10920, 20480, 15120, 4688},
      {"vww-nucleo-l412kb.tflite",
       7,
       4,
       {7, 14, 21, 27, 31},
       50,
       50,
       3,
       2,
       29168,
       31744,
       25120,
       6048},
  };
  return kModels;
}

// Inside the checkout: no test reads anything outside the repository.
inline std::string ReferenceModelsDir() {
  return NANONAS_SOURCE_DIR "/tests/data/reference-models";
}

inline std::string ReferenceModelPath(const ReferenceModel& m) {
  return ReferenceModelsDir() + "/" + m.file;
}

// Empty when the folder and every file are there, else a message saying where the test looked.
inline std::string MissingReferenceModels() {
  const std::string dir = ReferenceModelsDir();
  if (!std::filesystem::is_directory(dir)) {
    return "reference models folder not found: looked in " + dir +
           " (tests/data/reference-models in the repository)";
  }
  for (const ReferenceModel& m : ReferenceModels()) {
    if (!std::filesystem::is_regular_file(ReferenceModelPath(m))) {
      return "reference model missing: looked for " + ReferenceModelPath(m);
    }
  }
  return "";
}

}  // namespace nanonas

#endif  // NANONAS_TESTS_MCU_REFERENCE_MODELS_H_
