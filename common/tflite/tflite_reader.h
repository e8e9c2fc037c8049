// Reading .tflite files through nanonas's schema subset (tflite_schema.fbs): open and verify a
// file, and describe its main graph (ops in order, their tensors' shapes, types and quantization).
//
//   NANONAS_ASSIGN_OR_RETURN(TfliteGraph g, ReadTfliteFile("model.tflite"));
//   for (const TfliteOp& op : g.ops) ... g.tensors[op.outputs[0]].shape ...
//
// Thread-safety: pure functions and plain values, safe to call from any thread.
#ifndef NANONAS_COMMON_TFLITE_TFLITE_READER_H_
#define NANONAS_COMMON_TFLITE_TFLITE_READER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tflite/tflite_schema_generated.h"

namespace nanonas {

struct TfliteQuantization {
  std::vector<float> scale;  // one per tensor, or one per channel
  std::vector<int64_t> zero_point;
  int quantized_dimension = 0;
  bool empty() const { return scale.empty() && zero_point.empty(); }
};

struct TfliteTensor {
  int index = 0;
  std::string name;
  std::vector<int> shape;  // NHWC for activations; [] for a scalar
  tflite::TensorType type = tflite::TensorType_FLOAT32;
  uint32_t buffer = 0;         // index into the model's buffers
  int64_t constant_bytes = 0;  // size of the buffer's data; 0 for activations
  TfliteQuantization quantization;

  bool is_constant() const { return constant_bytes > 0; }
  int64_t num_elements() const;
  int64_t bytes() const;  // num_elements * element size of type
};

struct TfliteOp {
  std::string op;        // builtin name, e.g. "CONV_2D" ("BUILTIN_<n>" outside the subset,
                         // "CUSTOM:<code>" for custom ops)
  int builtin_code = 0;  // max(deprecated_builtin_code, builtin_code), as TFLite's runtimes read it
  int version = 1;
  std::vector<int> inputs;  // tensor indices (-1: omitted optional input)
  std::vector<int> outputs;
  // Options that matter for nanonas's graphs (zero when absent or not applicable).
  tflite::BuiltinOptions options_type = tflite::BuiltinOptions_NONE;
  std::string padding;  // "SAME" / "VALID" (CONV_2D, pools)
  int stride_h = 0, stride_w = 0;
  int filter_h = 0, filter_w = 0;  // pools
  std::string activation;          // fused activation: "NONE", "RELU", ...
  bool keep_dims = false;          // MEAN
};

struct TfliteGraph {
  uint32_t schema_version = 0;
  std::string description;
  int64_t file_bytes = 0;
  std::vector<TfliteTensor> tensors;  // of subgraph 0
  std::vector<TfliteOp> ops;          // in execution order
  std::vector<int> inputs, outputs;   // graph input/output tensor indices
  int num_subgraphs = 0;
  int num_buffers = 0;
  std::vector<std::string> metadata_names;
};

// Checks that `bytes` holds a complete TFLite model (file identifier "TFL3", flatbuffers
// Verifier over the subset) with at least one subgraph. INVALID_ARGUMENT saying what is wrong.
absl::Status VerifyTfliteModel(absl::string_view bytes);

// Verifies and returns the root table; the pointer lives as long as `bytes`.
absl::StatusOr<const tflite::Model*> GetVerifiedTfliteModel(absl::string_view bytes);

// Verifies and describes subgraph 0 of an in-memory model.
absl::StatusOr<TfliteGraph> DescribeTfliteModel(absl::string_view bytes);

// Reads `path` (NOT_FOUND if it cannot be opened) and describes it as above.
absl::StatusOr<TfliteGraph> ReadTfliteFile(const std::string& path);

// Reads a whole file into a string. NOT_FOUND / DATA_LOSS (read error).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// "CONV_2D"; "BUILTIN_<n>" for codes outside the subset.
std::string BuiltinOperatorName(int builtin_code);
// "UINT8", "INT8", ...
const char* TensorTypeName(tflite::TensorType type);
// Bytes per element (INT4 counts 1; STRING/RESOURCE/VARIANT 0).
int TensorTypeBytes(tflite::TensorType type);

// One line per op: "CONV_2D [1,50,50,3]int8 -> [1,50,50,6]int8 ..." for logs and test failures.
std::string FormatTfliteGraph(const TfliteGraph& graph);

}  // namespace nanonas

#endif  // NANONAS_COMMON_TFLITE_TFLITE_READER_H_
