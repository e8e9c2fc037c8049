// A job's spec: its defaults (named constants, the one place they live) and its validation
// (NormalizeSpec and the checks that need the decoded dataset), plus the search options and
// architectures a spec implies. Every INVALID_ARGUMENT says which field is wrong and how to fix
// it. Pure functions; thread-safe.
#ifndef NANONAS_SERVER_COORDINATOR_JOB_SPEC_H_
#define NANONAS_SERVER_COORDINATOR_JOB_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/api/defaults.h"
#include "common/arch/architecture.h"
#include "nanonas/v1/nanonas.pb.h"
#include "server/search/search.h"

namespace nanonas::coordinator {

// Defaults NormalizeSpec fills in for fields left 0 / empty.
// The defaults themselves are written once, in common/api/defaults.h.
inline constexpr const char* kDefaultVariant = defaults::kVariant;
inline constexpr double kDefaultValidationSplit = defaults::kValidationSplit;
inline constexpr int kDefaultEpochs = defaults::kEpochs;
inline constexpr int kDefaultBatchSize = defaults::kBatchSize;
inline constexpr float kDefaultLearningRate = defaults::kLearningRate;
inline constexpr uint64_t kDefaultSeed = defaults::kSeed;
inline constexpr int kDefaultFinalEpochs = defaults::kFinalEpochs;
inline constexpr int kDefaultFinalBatchSize = defaults::kFinalBatchSize;
inline constexpr float kDefaultFinalLearningRate = defaults::kFinalLearningRate;
// Upper bounds NormalizeSpec enforces.
inline constexpr int kMaxInputSide = 4096;
inline constexpr int kMaxEpochs = 1000;
inline constexpr int kMaxFinalEpochs = 10000;
inline constexpr int kMaxBatchSize = 4096;
inline constexpr double kMaxLearningRate = 10.0;
inline constexpr size_t kMaxNameBytes = 256;  // spec.name: shown in lists, files and model.h

// Fills the defaults of a spec (above; colour mode from channels and channels from colour mode)
// and checks it. INVALID_ARGUMENT says which field and how to fix it, naming the limit: the name
// (at most kMaxNameBytes, no control characters), numbers finite and in range (learning rates in
// (0, kMaxLearningRate], batch sizes up to kMaxBatchSize, epochs up to kMaxEpochs /
// kMaxFinalEpochs, the validation split strictly between 0 and 1).
absl::StatusOr<nanonas::v1::JobSpec> NormalizeSpec(const nanonas::v1::JobSpec& spec);

// The test set must have the training set's classes (INVALID_ARGUMENT naming both lists).
absl::Status CheckTestClasses(const std::vector<std::string>& train,
                              const std::vector<std::string>& test);

// Unless the final training is skipped, its quantization calibrates on training images: the
// validation split of `num_images` must leave enough of them (INVALID_ARGUMENT otherwise).
absl::Status CheckCalibrationImages(const nanonas::v1::JobSpec& spec, int64_t num_images);

// The search options of a job (input, classes, variant).
NanoNasSearch::Options SearchOptionsOf(const nanonas::v1::Job& job);

// The architecture of candidate (k, c) of a job.
absl::StatusOr<Architecture> ArchitectureOf(const nanonas::v1::Job& job, int k, int c);

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_JOB_SPEC_H_
