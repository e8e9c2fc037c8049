// Byte serialization of ModelWeights for EvaluateResult.weights (final training): the worker
// encodes the trained model, the coordinator decodes it for quantization and export.
//
// Layout (little-endian): "NNWT", u32 version (1), u32 #convs, per conv {i32 in, i32 out,
// f32[out*9*in] kernel, f32[out] bias}, u32 #batch norms, per BN {i32 channels, f32 epsilon,
// f32[C] gamma, beta, moving_mean, moving_variance}, dense {i32 in, i32 out, f32[out*in] kernel,
// f32[out] bias}. Every vector length follows from the dimensions stored before it.
#ifndef NANONAS_WORKER_SERVICE_WEIGHTS_CODEC_H_
#define NANONAS_WORKER_SERVICE_WEIGHTS_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/arch/weights.h"

namespace nanonas {

// REQUIRES: every vector has the length its dimensions imply (as the engine produces).
std::string SerializeModelWeights(const ModelWeights& weights);

// DATA_LOSS naming what is wrong for truncated, oversized or inconsistent input.
absl::StatusOr<ModelWeights> DeserializeModelWeights(const std::string& bytes);

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_WEIGHTS_CODEC_H_
