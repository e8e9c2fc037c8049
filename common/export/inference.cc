#include "common/export/inference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/export/inference_ops.h"

namespace nanonas {
namespace {

using inference_ops::Dims4;
using inference_ops::FloatConv3x3Same;
using inference_ops::FloatDense;
using inference_ops::FloatMaxPool2x2;
using inference_ops::FloatMean;
using inference_ops::FloatSoftmax;
using inference_ops::IntAdd;
using inference_ops::IntConv;
using inference_ops::IntFullyConnected;
using inference_ops::IntMaxPool;
using inference_ops::IntMean;
using inference_ops::IntMul;
using inference_ops::IntQuantize;
using inference_ops::IntSoftmax;
using inference_ops::Nhwc;

// How many input tensors an operation of the graph takes (weights and bias included).
size_t InputCount(OpKind kind) {
  switch (kind) {
    case OpKind::kConv2D:
    case OpKind::kFullyConnected:
      return 3;
    case OpKind::kMul:
    case OpKind::kAdd:
    case OpKind::kMean:
      return 2;
    default:
      return 1;
  }
}

absl::Status CheckOp(const Graph& g, const GraphOp& op, size_t inputs) {
  if (op.inputs.size() != inputs || op.outputs.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(OpKindName(op.kind), " has ", op.inputs.size(),
                                                   " inputs and ", op.outputs.size(),
                                                   " outputs; expected ", inputs, " and 1"));
  }
  for (int i : op.inputs) {
    if (i < 0 || i >= static_cast<int>(g.tensors.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat(OpKindName(op.kind), " reads tensor ", i, " outside the graph"));
    }
  }
  if (op.outputs[0] < 0 || op.outputs[0] >= static_cast<int>(g.tensors.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat(OpKindName(op.kind), " writes tensor ", op.outputs[0], " outside the graph"));
  }
  return absl::OkStatus();
}

std::vector<int32_t> DecodeInt(const GraphTensor& t) {
  std::vector<int32_t> v(static_cast<size_t>(t.num_elements()));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (t.type) {
      case ElementType::kInt8:
        v[i] = static_cast<int8_t>(t.data[i]);
        break;
      case ElementType::kUint8:
        v[i] = t.data[i];
        break;
      case ElementType::kInt32: {
        uint32_t u = 0;
        for (int b = 0; b < 4; ++b) u |= static_cast<uint32_t>(t.data[4 * i + b]) << (8 * b);
        v[i] = static_cast<int32_t>(u);
        break;
      }
      case ElementType::kFloat32: {
        uint32_t u = 0;
        for (int b = 0; b < 4; ++b) u |= static_cast<uint32_t>(t.data[4 * i + b]) << (8 * b);
        float f;
        std::memcpy(&f, &u, 4);
        v[i] = static_cast<int32_t>(f);
        break;
      }
    }
  }
  return v;
}

absl::Status CheckImageGraph(const Graph& g) {
  if (g.input < 0 || g.input >= static_cast<int>(g.tensors.size()) || g.output < 0 ||
      g.output >= static_cast<int>(g.tensors.size())) {
    return absl::InvalidArgumentError("graph input/output tensor index out of range");
  }
  if (g.tensor(g.input).shape.size() != 4) {
    return absl::InvalidArgumentError("graph input is not a [1, H, W, C] image tensor");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<float>> RunFloatGraph(const Graph& g, const uint8_t* image,
                                                 std::vector<std::vector<float>>* activations) {
  if (g.quantized) {
    return absl::FailedPreconditionError(
        "RunFloatGraph needs a float graph; this one is quantized");
  }
  NANONAS_RETURN_IF_ERROR(CheckImageGraph(g));
  std::vector<std::vector<float>> v(g.tensors.size());
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const GraphTensor& t = g.tensors[i];
    if (!t.constant) continue;
    if (t.type == ElementType::kFloat32) {
      v[i] = t.values;
    } else {
      for (int32_t x : DecodeInt(t)) v[i].push_back(static_cast<float>(x));
    }
  }
  const GraphTensor& in = g.tensor(g.input);
  v[g.input].assign(image, image + in.num_elements());
  for (const GraphOp& op : g.ops) {
    NANONAS_RETURN_IF_ERROR(CheckOp(g, op, InputCount(op.kind)));
    const int o = op.outputs[0];
    const std::vector<float>& a = v[op.inputs[0]];
    const Dims4 d = Nhwc(g.tensor(op.inputs[0]));
    switch (op.kind) {
      case OpKind::kMul:
      case OpKind::kAdd: {
        const std::vector<float>& b = v[op.inputs[1]];
        v[o].resize(a.size());
        for (size_t i = 0; i < a.size(); ++i) {
          const float y = b[i % b.size()];
          v[o][i] = op.kind == OpKind::kMul ? a[i] * y : a[i] + y;
        }
        break;
      }
      case OpKind::kConv2D:
        FloatConv3x3Same(a, d, v[op.inputs[1]], v[op.inputs[2]], g.tensor(op.inputs[1]).shape[0],
                         op.fused_relu, &v[o]);
        break;
      case OpKind::kMaxPool2D:
        FloatMaxPool2x2(a, d, &v[o]);
        break;
      case OpKind::kMean:
        FloatMean(a, d, &v[o]);
        break;
      case OpKind::kFullyConnected:
        FloatDense(a, v[op.inputs[1]], v[op.inputs[2]], &v[o]);
        break;
      case OpKind::kSoftmax:
        FloatSoftmax(a, &v[o]);
        break;
      case OpKind::kQuantize:
        v[o] = a;
        break;
    }
  }
  std::vector<float> result = v[g.output];
  if (activations != nullptr) *activations = std::move(v);
  return result;
}

absl::StatusOr<std::vector<uint8_t>> RunIntegerGraph(
    const Graph& g, const uint8_t* image, std::vector<std::vector<int32_t>>* raw_values) {
  if (!g.quantized) {
    return absl::FailedPreconditionError(
        "RunIntegerGraph needs a quantized graph; this one is float");
  }
  NANONAS_RETURN_IF_ERROR(CheckImageGraph(g));
  if (g.tensor(g.input).type != ElementType::kUint8 ||
      g.tensor(g.output).type != ElementType::kUint8) {
    return absl::InvalidArgumentError("quantized graph input and output must be uint8");
  }
  std::vector<std::vector<int32_t>> v(g.tensors.size());
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    if (g.tensors[i].constant) v[i] = DecodeInt(g.tensors[i]);
  }
  const GraphTensor& in = g.tensor(g.input);
  v[g.input].assign(image, image + in.num_elements());
  for (const GraphOp& op : g.ops) {
    NANONAS_RETURN_IF_ERROR(CheckOp(g, op, InputCount(op.kind)));
    const int o = op.outputs[0];
    const GraphTensor& ti = g.tensor(op.inputs[0]);
    const GraphTensor& to = g.tensor(o);
    if (ti.type != ElementType::kFloat32 && ti.quant.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(OpKindName(op.kind), " input '", ti.name,
                                                     "' has no quantization parameters"));
    }
    if (to.quant.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(OpKindName(op.kind), " output '", to.name,
                                                     "' has no quantization parameters"));
    }
    const std::vector<int32_t>& a = v[op.inputs[0]];
    const Dims4 d = Nhwc(ti);
    switch (op.kind) {
      case OpKind::kQuantize:
        IntQuantize(a, ti, to, &v[o]);
        break;
      case OpKind::kMul:
        IntMul(a, ti, v[op.inputs[1]], g.tensor(op.inputs[1]), to, &v[o]);
        break;
      case OpKind::kAdd:
        IntAdd(a, ti, v[op.inputs[1]], g.tensor(op.inputs[1]), to, &v[o]);
        break;
      case OpKind::kConv2D:
        IntConv(a, ti, d, v[op.inputs[1]], g.tensor(op.inputs[1]), v[op.inputs[2]], to,
                op.fused_relu, &v[o]);
        break;
      case OpKind::kMaxPool2D:
        IntMaxPool(a, d, &v[o]);
        break;
      case OpKind::kMean:
        IntMean(a, ti, d, to, &v[o]);
        break;
      case OpKind::kFullyConnected:
        IntFullyConnected(a, ti, v[op.inputs[1]], g.tensor(op.inputs[1]), v[op.inputs[2]], to,
                          &v[o]);
        break;
      case OpKind::kSoftmax:
        IntSoftmax(a, ti, &v[o]);
        break;
    }
  }
  std::vector<uint8_t> result(v[g.output].begin(), v[g.output].end());
  if (raw_values != nullptr) *raw_values = std::move(v);
  return result;
}

absl::StatusOr<std::vector<float>> FloatReferenceForward(const Architecture& arch,
                                                         const ModelWeights& w,
                                                         const uint8_t* image) {
  NANONAS_RETURN_IF_ERROR(CheckWeights(arch, w));
  Dims4 d{arch.spec.input.height, arch.spec.input.width, arch.spec.input.channels};
  std::vector<float> x(image, image + static_cast<size_t>(d.h) * d.w * d.c), y;
  int conv_i = 0, bn_i = 0;
  for (const Layer& l : arch.layers) {
    switch (l.kind) {
      case LayerKind::kRescale:
        for (float& f : x) f /= 255.0f;
        break;
      case LayerKind::kBatchNorm: {
        const BatchNormWeights& bn = w.batch_norms[bn_i++];
        for (size_t i = 0; i < x.size(); ++i) {
          const int c = static_cast<int>(i % d.c);
          x[i] = static_cast<float>(
              (x[i] - bn.moving_mean[c]) /
                  std::sqrt(static_cast<double>(bn.moving_variance[c]) + bn.epsilon) * bn.gamma[c] +
              bn.beta[c]);
        }
        break;
      }
      case LayerKind::kConv3x3: {
        const ConvWeights& cw = w.convs[conv_i++];
        FloatConv3x3Same(x, d, cw.kernel, cw.bias, cw.out_channels, l.fused_relu, &y);
        x.swap(y);
        d.c = cw.out_channels;
        break;
      }
      case LayerKind::kReLU:
        for (float& f : x) f = std::max(f, 0.0f);
        break;
      case LayerKind::kMaxPool2x2:
        FloatMaxPool2x2(x, d, &y);
        x.swap(y);
        d.h /= 2;
        d.w /= 2;
        break;
      case LayerKind::kGlobalAvgPool:
        FloatMean(x, d, &y);
        x.swap(y);
        d.h = d.w = 1;
        break;
      case LayerKind::kDropout:
        break;
      case LayerKind::kDense:
        FloatDense(x, w.dense.kernel, w.dense.bias, &y);
        x.swap(y);
        d.c = w.dense.out_features;
        break;
      case LayerKind::kSoftmax:
        FloatSoftmax(x, &y);
        x.swap(y);
        break;
    }
  }
  return x;
}

namespace {
absl::Status CheckDataset(const Graph& g, const Dataset& data,
                          const std::vector<int64_t>& indices) {
  const GraphTensor& in = g.tensor(g.input);
  if (in.shape.size() != 4 || in.shape[1] != data.shape.height || in.shape[2] != data.shape.width ||
      in.shape[3] != data.shape.channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset images are ", FormatInputShape(data.shape),
                     " but the model's input is ", FormatInputShape(g.spec.input)));
  }
  if (indices.empty())
    return absl::InvalidArgumentError("no images to evaluate (empty index list)");
  for (int64_t i : indices) {
    if (i < 0 || i >= data.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image index ", i, " is outside the dataset (", data.size(), " images)"));
    }
  }
  return absl::OkStatus();
}
}  // namespace

namespace {
// Share of `indices` whose argmax under `run` (RunIntegerGraph or RunFloatGraph) is the label.
template <typename Run>
absl::StatusOr<double> Accuracy(const Graph& g, const Dataset& data,
                                const std::vector<int64_t>& indices, Run run) {
  NANONAS_RETURN_IF_ERROR(CheckDataset(g, data, indices));
  int64_t correct = 0;
  for (int64_t i : indices) {
    auto out = run(g, data.image(i));
    if (!out.ok()) return out.status();
    if (Argmax(*out) == data.labels[i]) ++correct;
  }
  return static_cast<double>(correct) / static_cast<double>(indices.size());
}
}  // namespace

absl::StatusOr<double> QuantizedAccuracy(const Graph& g, const Dataset& data,
                                         const std::vector<int64_t>& indices) {
  return Accuracy(g, data, indices,
                  [](const Graph& gr, const uint8_t* img) { return RunIntegerGraph(gr, img); });
}

absl::StatusOr<double> FloatAccuracy(const Graph& g, const Dataset& data,
                                     const std::vector<int64_t>& indices) {
  return Accuracy(g, data, indices,
                  [](const Graph& gr, const uint8_t* img) { return RunFloatGraph(gr, img); });
}

}  // namespace nanonas
