// NanoNAS's training defaults, written once: candidate evaluation (3 epochs, Adam 1e-3, batch 16,
// seed 1, 30% validation) and the winner's final training (100 epochs, Adam 0.01, batch 128), and
// the input a job gets when it names none (50x50x3, variant 2023). The coordinator fills what a
// JobSpec leaves at zero, the CLI starts from DefaultJobSpec(), the engine's TrainOptions and
// nanonas-eval start from the constants (no protobuf needed for those). Pure; thread-safe.
#ifndef NANONAS_COMMON_API_DEFAULTS_H_
#define NANONAS_COMMON_API_DEFAULTS_H_

#include <cstdint>

// Declared only: the constants need no protobuf (the engine reads them); the functions do.
namespace nanonas::v1 {
class EvaluationSettings;
class FinalTrainingSettings;
class JobSpec;
}  // namespace nanonas::v1

namespace nanonas::defaults {

inline constexpr int kEpochs = 3;
inline constexpr float kLearningRate = 1e-3f;
inline constexpr int kBatchSize = 16;
inline constexpr uint64_t kSeed = 1;
inline constexpr double kValidationSplit = 0.3;

inline constexpr int kFinalEpochs = 100;
inline constexpr float kFinalLearningRate = 0.01f;
inline constexpr int kFinalBatchSize = 128;

inline constexpr int kInputHeight = 50;
inline constexpr int kInputWidth = 50;
inline constexpr int kInputChannels = 3;
inline constexpr char kVariant[] = "2023";

// Sets every field left at zero to its default (explicit values stay).
void FillEvaluationDefaults(nanonas::v1::EvaluationSettings* settings);
void FillFinalTrainingDefaults(nanonas::v1::FinalTrainingSettings* settings);

// A JobSpec holding every default: input, validation split, variant, evaluation and final
// training settings (no dataset, no limits).
nanonas::v1::JobSpec DefaultJobSpec();

}  // namespace nanonas::defaults

#endif  // NANONAS_COMMON_API_DEFAULTS_H_
