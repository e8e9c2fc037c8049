#include "common/export/tflite_writer.h"

#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/export/quantize.h"
#include "common/tflite/tflite_schema_generated.h"
#include "flatbuffers/flatbuffers.h"

namespace nanonas {
namespace {

namespace fb = flatbuffers;

tflite::TensorType ToTflite(ElementType t) {
  switch (t) {
    case ElementType::kFloat32:
      return tflite::TensorType_FLOAT32;
    case ElementType::kUint8:
      return tflite::TensorType_UINT8;
    case ElementType::kInt8:
      return tflite::TensorType_INT8;
    case ElementType::kInt32:
      return tflite::TensorType_INT32;
  }
  return tflite::TensorType_FLOAT32;
}

struct OpCodeInfo {
  tflite::BuiltinOperator code;
  int version;  // as the TF 2.11+ converter writes them for these int8 graphs
};
OpCodeInfo CodeOf(OpKind kind) {
  switch (kind) {
    case OpKind::kQuantize:
      return {tflite::BuiltinOperator_QUANTIZE, 1};
    case OpKind::kMul:
      return {tflite::BuiltinOperator_MUL, 2};
    case OpKind::kAdd:
      return {tflite::BuiltinOperator_ADD, 2};
    case OpKind::kConv2D:
      return {tflite::BuiltinOperator_CONV_2D, 3};
    case OpKind::kMaxPool2D:
      return {tflite::BuiltinOperator_MAX_POOL_2D, 2};
    case OpKind::kMean:
      return {tflite::BuiltinOperator_MEAN, 2};
    case OpKind::kFullyConnected:
      return {tflite::BuiltinOperator_FULLY_CONNECTED, 4};
    case OpKind::kSoftmax:
      return {tflite::BuiltinOperator_SOFTMAX, 2};
  }
  return {tflite::BuiltinOperator_ADD, 1};
}

// Builtin options of one op (type NONE and a null offset for QUANTIZE).
std::pair<tflite::BuiltinOptions, fb::Offset<void>> Options(fb::FlatBufferBuilder& b,
                                                            const GraphOp& op) {
  switch (op.kind) {
    case OpKind::kQuantize:
      return {tflite::BuiltinOptions_NONE, 0};
    case OpKind::kMul: {
      tflite::MulOptionsBuilder o(b);
      o.add_fused_activation_function(tflite::ActivationFunctionType_NONE);
      return {tflite::BuiltinOptions_MulOptions, o.Finish().Union()};
    }
    case OpKind::kAdd: {
      tflite::AddOptionsBuilder o(b);
      o.add_fused_activation_function(tflite::ActivationFunctionType_NONE);
      return {tflite::BuiltinOptions_AddOptions, o.Finish().Union()};
    }
    case OpKind::kConv2D: {
      tflite::Conv2DOptionsBuilder o(b);
      o.add_padding(tflite::Padding_SAME);
      o.add_stride_w(1);
      o.add_stride_h(1);
      o.add_fused_activation_function(op.fused_relu ? tflite::ActivationFunctionType_RELU
                                                    : tflite::ActivationFunctionType_NONE);
      o.add_dilation_w_factor(1);
      o.add_dilation_h_factor(1);
      return {tflite::BuiltinOptions_Conv2DOptions, o.Finish().Union()};
    }
    case OpKind::kMaxPool2D: {
      tflite::Pool2DOptionsBuilder o(b);
      o.add_padding(tflite::Padding_VALID);
      o.add_stride_w(2);
      o.add_stride_h(2);
      o.add_filter_width(2);
      o.add_filter_height(2);
      o.add_fused_activation_function(tflite::ActivationFunctionType_NONE);
      return {tflite::BuiltinOptions_Pool2DOptions, o.Finish().Union()};
    }
    case OpKind::kMean: {
      tflite::ReducerOptionsBuilder o(b);
      o.add_keep_dims(false);
      return {tflite::BuiltinOptions_ReducerOptions, o.Finish().Union()};
    }
    case OpKind::kFullyConnected: {
      tflite::FullyConnectedOptionsBuilder o(b);
      o.add_fused_activation_function(tflite::ActivationFunctionType_NONE);
      o.add_weights_format(tflite::FullyConnectedOptionsWeightsFormat_DEFAULT);
      o.add_keep_num_dims(false);
      o.add_asymmetric_quantize_inputs(false);
      return {tflite::BuiltinOptions_FullyConnectedOptions, o.Finish().Union()};
    }
    case OpKind::kSoftmax: {
      tflite::SoftmaxOptionsBuilder o(b);
      o.add_beta(1.0f);
      return {tflite::BuiltinOptions_SoftmaxOptions, o.Finish().Union()};
    }
  }
  return {tflite::BuiltinOptions_NONE, 0};
}

// Buffers: 0 is the empty sentinel shared by every activation; then one per constant.
// Fills `buffer_of` with each tensor's buffer index (0 for activations).
absl::Status AddBuffers(const Graph& g, fb::FlatBufferBuilder& b,
                        std::vector<fb::Offset<tflite::Buffer>>* buffers,
                        std::vector<uint32_t>* buffer_of) {
  buffers->push_back(tflite::BufferBuilder(b).Finish());
  buffer_of->assign(g.tensors.size(), 0);
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const GraphTensor& t = g.tensors[i];
    if (!t.constant) continue;
    if (static_cast<int64_t>(t.data.size()) != t.bytes()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' holds ", t.data.size(),
                                                     " bytes, its shape and type need ",
                                                     t.bytes()));
    }
    b.ForceVectorAlignment(t.data.size(), sizeof(uint8_t), 16);
    const auto data = b.CreateVector(t.data);
    tflite::BufferBuilder bb(b);
    bb.add_data(data);
    buffers->push_back(bb.Finish());
    (*buffer_of)[i] = static_cast<uint32_t>(buffers->size() - 1);
  }
  return absl::OkStatus();
}

fb::Offset<tflite::Tensor> AddTensor(const GraphTensor& t, uint32_t buffer,
                                     fb::FlatBufferBuilder& b) {
  const auto shape = b.CreateVector(t.shape);
  const auto name = b.CreateString(t.name);
  fb::Offset<tflite::QuantizationParameters> quant = 0;
  if (!t.quant.empty()) {
    const auto scale = b.CreateVector(t.quant.scale);
    const auto zp = b.CreateVector(t.quant.zero_point);
    tflite::QuantizationParametersBuilder qb(b);
    qb.add_scale(scale);
    qb.add_zero_point(zp);
    qb.add_quantized_dimension(t.quant.quantized_dimension);
    quant = qb.Finish();
  }
  tflite::TensorBuilder tb(b);
  tb.add_shape(shape);
  tb.add_type(ToTflite(t.type));
  tb.add_buffer(buffer);
  tb.add_name(name);
  if (!quant.IsNull()) tb.add_quantization(quant);
  return tb.Finish();
}

// Operators, and one operator code per op kind in the order the kinds first appear.
void AddOperators(const Graph& g, fb::FlatBufferBuilder& b,
                  std::vector<fb::Offset<tflite::OperatorCode>>* codes,
                  std::vector<fb::Offset<tflite::Operator>>* ops) {
  std::map<OpKind, uint32_t> code_index;
  for (const GraphOp& op : g.ops) {
    auto it = code_index.find(op.kind);
    if (it == code_index.end()) {
      const OpCodeInfo info = CodeOf(op.kind);
      tflite::OperatorCodeBuilder cb(b);
      cb.add_deprecated_builtin_code(static_cast<int8_t>(info.code));
      cb.add_version(info.version);
      cb.add_builtin_code(info.code);
      codes->push_back(cb.Finish());
      it = code_index.emplace(op.kind, static_cast<uint32_t>(codes->size() - 1)).first;
    }
    const auto inputs = b.CreateVector(op.inputs);
    const auto outputs = b.CreateVector(op.outputs);
    const auto options = Options(b, op);
    tflite::OperatorBuilder ob(b);
    ob.add_opcode_index(it->second);
    ob.add_inputs(inputs);
    ob.add_outputs(outputs);
    if (options.first != tflite::BuiltinOptions_NONE) {
      ob.add_builtin_options_type(options.first);
      ob.add_builtin_options(options.second);
    }
    ops->push_back(ob.Finish());
  }
}

fb::Offset<tflite::SubGraph> AddSubGraph(const Graph& g,
                                         const std::vector<fb::Offset<tflite::Tensor>>& tensors,
                                         const std::vector<fb::Offset<tflite::Operator>>& ops,
                                         fb::FlatBufferBuilder& b) {
  const auto tensors_v = b.CreateVector(tensors);
  const auto in_v = b.CreateVector(std::vector<int32_t>{g.input});
  const auto out_v = b.CreateVector(std::vector<int32_t>{g.output});
  const auto ops_v = b.CreateVector(ops);
  const auto sg_name = b.CreateString("main");
  tflite::SubGraphBuilder sb(b);
  sb.add_tensors(tensors_v);
  sb.add_inputs(in_v);
  sb.add_outputs(out_v);
  sb.add_operators(ops_v);
  sb.add_name(sg_name);
  return sb.Finish();
}

}  // namespace

absl::StatusOr<std::string> SerializeTflite(const Graph& g) {
  if (!g.quantized) {
    return absl::InvalidArgumentError(
        "only quantized graphs are written as .tflite (quantize first)");
  }
  fb::FlatBufferBuilder b(16 * 1024);
  b.ForceDefaults(true);  // every scalar is written, so the size cannot depend on values

  // The flatbuffer is built back to front; the order of these steps fixes the output bytes.
  std::vector<fb::Offset<tflite::Buffer>> buffers;
  std::vector<uint32_t> buffer_of;
  NANONAS_RETURN_IF_ERROR(AddBuffers(g, b, &buffers, &buffer_of));
  std::vector<fb::Offset<tflite::Tensor>> tensors;
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    tensors.push_back(AddTensor(g.tensors[i], buffer_of[i], b));
  }
  std::vector<fb::Offset<tflite::OperatorCode>> codes;
  std::vector<fb::Offset<tflite::Operator>> ops;
  AddOperators(g, b, &codes, &ops);
  const auto subgraph = AddSubGraph(g, tensors, ops, b);

  const auto codes_v = b.CreateVector(codes);
  const auto subgraphs_v = b.CreateVector(std::vector<fb::Offset<tflite::SubGraph>>{subgraph});
  const auto description = b.CreateString("nanonas");
  const auto buffers_v = b.CreateVector(buffers);
  tflite::ModelBuilder mb(b);
  mb.add_version(3);
  mb.add_operator_codes(codes_v);
  mb.add_subgraphs(subgraphs_v);
  mb.add_description(description);
  mb.add_buffers(buffers_v);
  b.Finish(mb.Finish(), "TFL3");
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

absl::StatusOr<int64_t> PredictFlashBytes(const Architecture& arch) {
  NANONAS_ASSIGN_OR_RETURN(Graph g, PlaceholderQuantizedGraph(arch));
  NANONAS_ASSIGN_OR_RETURN(std::string bytes, SerializeTflite(g));
  return static_cast<int64_t>(bytes.size());
}

absl::StatusOr<int64_t> PredictFlashBytes(const CandidateSpec& spec) {
  NANONAS_ASSIGN_OR_RETURN(Architecture arch, BuildArchitecture(spec));
  return PredictFlashBytes(arch);
}

absl::Status WriteBinaryFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::InternalError(absl::StrCat("cannot open '", path, "' for writing"));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::InternalError(absl::StrCat("writing '", path, "' failed"));
  return absl::OkStatus();
}

}  // namespace nanonas
