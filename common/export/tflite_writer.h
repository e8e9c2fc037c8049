// Serialises a quantized graph (common/export/graph.h) as a .tflite file: TFLite schema version 3,
// file identifier "TFL3", buffer 0 the empty sentinel (activations point at it), one buffer per
// constant, short structural tensor names, no metadata. Written with flatbuffers' builder over
// nanonas_tflite's generated schema code with ForceDefaults(true), so the file size depends only on
// the architecture, never on the weight values: PredictFlashBytes gives it before training.
#ifndef NANONAS_COMMON_EXPORT_TFLITE_WRITER_H_
#define NANONAS_COMMON_EXPORT_TFLITE_WRITER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/export/graph.h"

namespace nanonas {

// The .tflite bytes of a quantized graph. INVALID_ARGUMENT for a float graph or a tensor whose
// data size does not match its shape and type.
absl::StatusOr<std::string> SerializeTflite(const Graph& quantized_graph);

// Exact size in bytes of the .tflite file nanonas writes for `arch` (any weights): the MCU Flash
// figure. Computable before training.
absl::StatusOr<int64_t> PredictFlashBytes(const Architecture& arch);
absl::StatusOr<int64_t> PredictFlashBytes(const CandidateSpec& spec);

// Writes bytes to path (INTERNAL naming the path on failure).
absl::Status WriteBinaryFile(const std::string& path, const std::string& bytes);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_TFLITE_WRITER_H_
