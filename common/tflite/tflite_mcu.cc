#include "common/tflite/tflite_mcu.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace nanonas {

namespace {

absl::StatusOr<McuTensor> McuTensorOf(const TfliteTensor& t) {
  for (int d : t.shape) {
    if (d < 1) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", t.index, " ('", t.name,
                                                     "') has a dynamic or empty dimension (", d,
                                                     "): the MCU model needs static shapes"));
    }
  }
  McuTensor m;
  m.name = t.name;
  m.shape = t.shape;
  m.constant = t.is_constant();
  switch (t.type) {
    case tflite::TensorType_UINT8:
      m.type = McuTensorType::kUint8;
      break;
    case tflite::TensorType_INT8:
      m.type = McuTensorType::kInt8;
      break;
    case tflite::TensorType_INT32:
      m.type = McuTensorType::kInt32;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("tensor ", t.index, " ('", t.name,
                                                     "') has type ", TensorTypeName(t.type),
                                                     ": the MCU model covers UINT8/INT8/INT32"));
  }
  return m;
}

// Op n of `graph` as the MCU memory model sees it: its tensors' shapes and its scratch buffer.
absl::StatusOr<McuGraphOp> McuOpOf(const TfliteGraph& graph, size_t n) {
  static const char* kKnown[] = {
      "QUANTIZE", "MUL", "ADD", "CONV_2D", "MAX_POOL_2D", "MEAN", "FULLY_CONNECTED", "SOFTMAX"};
  const TfliteOp& op = graph.ops[n];
  bool known = false;
  for (const char* k : kKnown) known = known || op.op == k;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("op ", n, " is ", op.op, ", which the MCU memory model does not cover"));
  }
  McuGraphOp m;
  m.op = op.op;
  for (int i : op.inputs) {
    if (i < 0) continue;  // omitted optional input
    m.inputs.push_back(i);
    m.input_shapes.push_back(graph.tensors[i].shape);
  }
  for (int i : op.outputs) {
    if (i < 0) continue;
    m.outputs.push_back(i);
    m.output_shapes.push_back(graph.tensors[i].shape);
  }
  if (m.inputs.empty() || m.outputs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("op ", n, " (", op.op, ") has no input or output"));
  }
  const std::vector<int>& in_shape = graph.tensors[m.inputs[0]].shape;
  if (op.op == "CONV_2D") {
    const std::vector<int>* w = m.inputs.size() >= 2 ? &graph.tensors[m.inputs[1]].shape : nullptr;
    if (in_shape.size() != 4 || w == nullptr || w->size() != 4 || (*w)[1] != 3 || (*w)[2] != 3) {
      return absl::InvalidArgumentError(
          absl::StrCat("op ", n, " is a CONV_2D other than 3x3 NHWC: not covered"));
    }
    m.scratch_bytes = 36LL * in_shape[3];
    m.fused_relu = op.activation == "RELU";
  } else if (op.op == "MEAN") {
    if (in_shape.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("op ", n, " (MEAN) has a scalar input"));
    }
    m.scratch_bytes = 4LL * in_shape.back();
  }
  return m;
}

}  // namespace

absl::StatusOr<McuGraph> McuGraphFromTflite(const TfliteGraph& graph) {
  if (graph.inputs.size() != 1 || graph.outputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("graph has ", graph.inputs.size(),
                                                   " inputs and ", graph.outputs.size(),
                                                   " outputs: the MCU model needs one of each"));
  }
  McuGraph g;
  for (const TfliteTensor& t : graph.tensors) {
    NANONAS_ASSIGN_OR_RETURN(McuTensor m, McuTensorOf(t));
    g.tensors.push_back(std::move(m));
  }
  g.input = graph.inputs[0];
  g.output = graph.outputs[0];
  for (size_t n = 0; n < graph.ops.size(); ++n) {
    NANONAS_ASSIGN_OR_RETURN(McuGraphOp m, McuOpOf(graph, n));
    g.ops.push_back(std::move(m));
  }
  return g;
}

absl::StatusOr<McuResources> McuResourcesOfTflite(const TfliteGraph& graph) {
  NANONAS_ASSIGN_OR_RETURN(McuGraph g, McuGraphFromTflite(graph));
  McuResources r;
  r.arena_bytes = ArenaBytes(g);
  r.persistent_bytes = PersistentBytes(g);
  r.ram_bytes = RamBytesFromArenaUsed(r.arena_used_bytes());
  r.flash_bytes = graph.file_bytes;
  r.flash_exact = true;
  return r;
}

}  // namespace nanonas
