// The exported network as a TFLite-style tensor graph: the one description that the quantizer
// produces, the integer and float interpreters run and the .tflite writer serialises, so what is
// tested is exactly what is written.
//
// A float graph (BuildFloatGraph) holds float32 constants and float activations; quantizing it
// (common/export/quantize.h) gives the full-integer graph: uint8 input, QUANTIZE to int8, int8
// inside, SOFTMAX int8, QUANTIZE to uint8 output.
#ifndef NANONAS_COMMON_EXPORT_GRAPH_H_
#define NANONAS_COMMON_EXPORT_GRAPH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/arch/weights.h"

namespace nanonas {

enum class ElementType { kFloat32, kUint8, kInt8, kInt32 };
const char* ElementTypeName(ElementType type);
int ElementTypeBytes(ElementType type);

// real = scale * (q - zero_point); one entry per tensor, or one per slice of quantized_dimension.
struct QuantParams {
  std::vector<float> scale;
  std::vector<int64_t> zero_point;
  int quantized_dimension = 0;
  bool empty() const { return scale.empty(); }
};

struct GraphTensor {
  std::string name;        // short, structural ("conv1/w"); never depends on values
  std::vector<int> shape;  // NHWC with batch 1 for activations; [] for a scalar
  ElementType type = ElementType::kFloat32;
  bool constant = false;
  std::vector<float> values;  // float constants (float graphs)
  std::vector<uint8_t> data;  // raw little-endian bytes of quantized constants
  QuantParams quant;          // empty in float graphs (and for the MEAN axes)

  int64_t num_elements() const;
  int64_t bytes() const { return num_elements() * ElementTypeBytes(type); }
};

enum class OpKind { kQuantize, kMul, kAdd, kConv2D, kMaxPool2D, kMean, kFullyConnected, kSoftmax };
const char* OpKindName(OpKind kind);  // TFLite's names: "CONV_2D", ...

struct GraphOp {
  OpKind kind;
  std::vector<int> inputs;  // tensor indices, TFLite's operand order
  std::vector<int> outputs;
  bool fused_relu = false;  // CONV_2D
};

struct Graph {
  CandidateSpec spec;
  std::vector<GraphTensor> tensors;
  std::vector<GraphOp> ops;  // execution order
  int input = 0;             // graph input tensor
  int output = 0;            // graph output tensor
  bool quantized = false;

  const GraphTensor& tensor(int i) const { return tensors[static_cast<size_t>(i)]; }
};

// Checks that `weights` has every layer of `arch` with matching sizes. INVALID_ARGUMENT naming the
// first mismatch.
absl::Status CheckWeights(const Architecture& arch, const ModelWeights& weights);

// The float32 inference graph of a trained model, as the TFLite converter lays it out:
// 2023: MUL(1/255), MUL+ADD (input BatchNorm as per-channel vectors), CONV_2D(RELU),
//       c x [MAX_POOL_2D, MUL+ADD (cell BatchNorm), CONV_2D(RELU)], MEAN, FULLY_CONNECTED, SOFTMAX.
// 2024: CONV_2D(RELU) with the BatchNorm folded in, c x [MAX_POOL_2D, CONV_2D(RELU)], MEAN,
//       FULLY_CONNECTED, SOFTMAX.
// The input is float [1, H, W, C] holding raw pixel values 0..255.
absl::StatusOr<Graph> BuildFloatGraph(const Architecture& arch, const ModelWeights& weights);

// Weights of the right sizes for `arch`, every value zero except unit BatchNorm variance and
// gamma: a placeholder for size computations (PredictFlashBytes) and tests.
ModelWeights PlaceholderWeights(const Architecture& arch);

// One line per op, for logs and test failures.
std::string FormatGraph(const Graph& graph);

}  // namespace nanonas

#endif  // NANONAS_COMMON_EXPORT_GRAPH_H_
