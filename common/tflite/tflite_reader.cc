#include "common/tflite/tflite_reader.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "flatbuffers/flatbuffers.h"

namespace nanonas {
namespace {

template <typename T, typename U>
std::vector<U> ToVector(const flatbuffers::Vector<T>* v) {
  std::vector<U> out;
  if (v == nullptr) return out;
  out.reserve(v->size());
  for (auto x : *v) out.push_back(static_cast<U>(x));
  return out;
}

void ReadOptions(const tflite::Operator& op, TfliteOp* out) {
  out->options_type = op.builtin_options_type();
  switch (op.builtin_options_type()) {
    case tflite::BuiltinOptions_Conv2DOptions: {
      const auto* o = op.builtin_options_as_Conv2DOptions();
      out->padding = tflite::EnumNamePadding(o->padding());
      out->stride_h = o->stride_h();
      out->stride_w = o->stride_w();
      out->activation = tflite::EnumNameActivationFunctionType(o->fused_activation_function());
      break;
    }
    case tflite::BuiltinOptions_Pool2DOptions: {
      const auto* o = op.builtin_options_as_Pool2DOptions();
      out->padding = tflite::EnumNamePadding(o->padding());
      out->stride_h = o->stride_h();
      out->stride_w = o->stride_w();
      out->filter_h = o->filter_height();
      out->filter_w = o->filter_width();
      out->activation = tflite::EnumNameActivationFunctionType(o->fused_activation_function());
      break;
    }
    case tflite::BuiltinOptions_FullyConnectedOptions:
      out->activation = tflite::EnumNameActivationFunctionType(
          op.builtin_options_as_FullyConnectedOptions()->fused_activation_function());
      break;
    case tflite::BuiltinOptions_AddOptions:
      out->activation = tflite::EnumNameActivationFunctionType(
          op.builtin_options_as_AddOptions()->fused_activation_function());
      break;
    case tflite::BuiltinOptions_MulOptions:
      out->activation = tflite::EnumNameActivationFunctionType(
          op.builtin_options_as_MulOptions()->fused_activation_function());
      break;
    case tflite::BuiltinOptions_ReducerOptions:
      out->keep_dims = op.builtin_options_as_ReducerOptions()->keep_dims();
      break;
    default:
      break;
  }
}

}  // namespace

int64_t TfliteTensor::num_elements() const {
  int64_t n = 1;
  for (int d : shape) n *= d;
  return n;
}

int64_t TfliteTensor::bytes() const { return num_elements() * TensorTypeBytes(type); }

std::string BuiltinOperatorName(int builtin_code) {
  const char* name = "";
  if (builtin_code >= 0) {
    name = tflite::EnumNameBuiltinOperator(static_cast<tflite::BuiltinOperator>(builtin_code));
  }
  if (name == nullptr || *name == '\0') return absl::StrCat("BUILTIN_", builtin_code);
  return name;
}

const char* TensorTypeName(tflite::TensorType type) {
  const char* name = tflite::EnumNameTensorType(type);
  return (name == nullptr || *name == '\0') ? "UNKNOWN" : name;
}

int TensorTypeBytes(tflite::TensorType type) {
  switch (type) {
    case tflite::TensorType_FLOAT64:
    case tflite::TensorType_INT64:
    case tflite::TensorType_UINT64:
    case tflite::TensorType_COMPLEX64:
      return 8;
    case tflite::TensorType_COMPLEX128:
      return 16;
    case tflite::TensorType_FLOAT32:
    case tflite::TensorType_INT32:
    case tflite::TensorType_UINT32:
      return 4;
    case tflite::TensorType_FLOAT16:
    case tflite::TensorType_INT16:
    case tflite::TensorType_UINT16:
      return 2;
    case tflite::TensorType_UINT8:
    case tflite::TensorType_INT8:
    case tflite::TensorType_BOOL:
    case tflite::TensorType_INT4:
      return 1;
    default:
      return 0;
  }
}

absl::Status VerifyTfliteModel(absl::string_view bytes) {
  if (bytes.size() < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a TFLite model: ", bytes.size(), " bytes is too short for a flatbuffer"));
  }
  if (!flatbuffers::BufferHasIdentifier(bytes.data(), tflite::ModelIdentifier())) {
    return absl::InvalidArgumentError(
        "not a TFLite model: the flatbuffer file identifier is not \"TFL3\"");
  }
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (!tflite::VerifyModelBuffer(verifier)) {
    return absl::InvalidArgumentError(
        "corrupt TFLite model: the flatbuffer failed verification (truncated or damaged file)");
  }
  const tflite::Model* model = tflite::GetModel(bytes.data());
  if (model->subgraphs() == nullptr || model->subgraphs()->size() == 0) {
    return absl::InvalidArgumentError("TFLite model has no subgraph");
  }
  return absl::OkStatus();
}

absl::StatusOr<const tflite::Model*> GetVerifiedTfliteModel(absl::string_view bytes) {
  NANONAS_RETURN_IF_ERROR(VerifyTfliteModel(bytes));
  return tflite::GetModel(bytes.data());
}

namespace {

// INVALID_ARGUMENT when an index of `idx` is neither -1 (absent) nor a tensor of subgraph 0.
absl::Status CheckTensorIndices(const std::vector<int>& idx, int num_tensors,
                                const std::string& what) {
  for (int i : idx) {
    if (i < -1 || i >= num_tensors) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " refers to tensor ", i, " but subgraph 0 has ", num_tensors));
    }
  }
  return absl::OkStatus();
}

// The tensors of `sg` into g->tensors (g->num_buffers already set).
absl::Status ReadTensors(const tflite::Model& model, const tflite::SubGraph& sg, TfliteGraph* g) {
  const auto* buffers = model.buffers();
  const int num_tensors = sg.tensors() == nullptr ? 0 : static_cast<int>(sg.tensors()->size());
  for (int i = 0; i < num_tensors; ++i) {
    const tflite::Tensor* t = sg.tensors()->Get(i);
    TfliteTensor out;
    out.index = i;
    if (t->name() != nullptr) out.name = t->name()->str();
    out.shape = ToVector<int32_t, int>(t->shape());
    out.type = t->type();
    out.buffer = t->buffer();
    if (out.buffer != 0) {
      if (static_cast<int>(out.buffer) >= g->num_buffers) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", i, " ('", out.name,
                                                       "') refers to buffer ", out.buffer,
                                                       " but the model has ", g->num_buffers));
      }
      const tflite::Buffer* b = buffers->Get(out.buffer);
      if (b->data() != nullptr) out.constant_bytes = b->data()->size();
    }
    if (const tflite::QuantizationParameters* q = t->quantization()) {
      out.quantization.scale = ToVector<float, float>(q->scale());
      out.quantization.zero_point = ToVector<int64_t, int64_t>(q->zero_point());
      out.quantization.quantized_dimension = q->quantized_dimension();
    }
    g->tensors.push_back(std::move(out));
  }
  return absl::OkStatus();
}

// The operators of `sg` into g->ops (g->tensors already read).
absl::Status ReadOps(const tflite::Model& model, const tflite::SubGraph& sg, TfliteGraph* g) {
  const int num_tensors = static_cast<int>(g->tensors.size());
  const auto* codes = model.operator_codes();
  const int num_codes = codes == nullptr ? 0 : static_cast<int>(codes->size());
  if (sg.operators() == nullptr) return absl::OkStatus();
  for (const tflite::Operator* op : *sg.operators()) {
    const int n = static_cast<int>(g->ops.size());
    if (static_cast<int>(op->opcode_index()) >= num_codes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "op ", n, " uses operator code ", op->opcode_index(), " but the model has ", num_codes));
    }
    const tflite::OperatorCode* code = codes->Get(op->opcode_index());
    TfliteOp out;
    out.builtin_code = std::max<int>(code->deprecated_builtin_code(), code->builtin_code());
    out.version = code->version();
    out.op = out.builtin_code == tflite::BuiltinOperator(32)  // CUSTOM
                 ? absl::StrCat("CUSTOM:", code->custom_code() ? code->custom_code()->str() : "")
                 : BuiltinOperatorName(out.builtin_code);
    out.inputs = ToVector<int32_t, int>(op->inputs());
    out.outputs = ToVector<int32_t, int>(op->outputs());
    NANONAS_RETURN_IF_ERROR(
        CheckTensorIndices(out.inputs, num_tensors, absl::StrCat("op ", n, " input")));
    NANONAS_RETURN_IF_ERROR(
        CheckTensorIndices(out.outputs, num_tensors, absl::StrCat("op ", n, " output")));
    ReadOptions(*op, &out);
    g->ops.push_back(std::move(out));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TfliteGraph> DescribeTfliteModel(absl::string_view bytes) {
  NANONAS_ASSIGN_OR_RETURN(const tflite::Model* model, GetVerifiedTfliteModel(bytes));
  TfliteGraph g;
  g.schema_version = model->version();
  g.file_bytes = static_cast<int64_t>(bytes.size());
  if (model->description() != nullptr) g.description = model->description()->str();
  g.num_subgraphs = static_cast<int>(model->subgraphs()->size());
  const auto* buffers = model->buffers();
  g.num_buffers = buffers == nullptr ? 0 : static_cast<int>(buffers->size());
  if (model->metadata() != nullptr) {
    for (const tflite::Metadata* m : *model->metadata()) {
      g.metadata_names.push_back(m->name() == nullptr ? "" : m->name()->str());
    }
  }
  const tflite::SubGraph* sg = model->subgraphs()->Get(0);
  NANONAS_RETURN_IF_ERROR(ReadTensors(*model, *sg, &g));
  const int num_tensors = static_cast<int>(g.tensors.size());
  g.inputs = ToVector<int32_t, int>(sg->inputs());
  g.outputs = ToVector<int32_t, int>(sg->outputs());
  NANONAS_RETURN_IF_ERROR(CheckTensorIndices(g.inputs, num_tensors, "graph input"));
  NANONAS_RETURN_IF_ERROR(CheckTensorIndices(g.outputs, num_tensors, "graph output"));
  NANONAS_RETURN_IF_ERROR(ReadOps(*model, *sg, &g));
  return g;
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error while reading '", path, "'"));
  return ss.str();
}

absl::StatusOr<TfliteGraph> ReadTfliteFile(const std::string& path) {
  NANONAS_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  absl::StatusOr<TfliteGraph> g = DescribeTfliteModel(bytes);
  if (!g.ok()) {
    return absl::Status(g.status().code(), absl::StrCat(path, ": ", g.status().message()));
  }
  return g;
}

std::string FormatTfliteGraph(const TfliteGraph& graph) {
  auto tensor = [&](int i) -> std::string {
    if (i < 0) return "-";
    const TfliteTensor& t = graph.tensors[i];
    std::string s = absl::StrCat("[", absl::StrJoin(t.shape, ","), "]", TensorTypeName(t.type));
    if (t.is_constant()) absl::StrAppend(&s, "(const)");
    return s;
  };
  std::string out;
  for (size_t n = 0; n < graph.ops.size(); ++n) {
    const TfliteOp& op = graph.ops[n];
    std::vector<std::string> ins, outs;
    for (int i : op.inputs) ins.push_back(tensor(i));
    for (int i : op.outputs) outs.push_back(tensor(i));
    absl::StrAppend(&out, n, ": ", op.op, " ", absl::StrJoin(ins, " "), " -> ",
                    absl::StrJoin(outs, " "), "\n");
  }
  return out;
}

}  // namespace nanonas
