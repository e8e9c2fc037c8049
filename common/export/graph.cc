#include "common/export/graph.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nanonas {

const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return "float32";
    case ElementType::kUint8:
      return "uint8";
    case ElementType::kInt8:
      return "int8";
    case ElementType::kInt32:
      return "int32";
  }
  return "?";
}

int ElementTypeBytes(ElementType type) {
  switch (type) {
    case ElementType::kFloat32:
      return 4;
    case ElementType::kUint8:
      return 1;
    case ElementType::kInt8:
      return 1;
    case ElementType::kInt32:
      return 4;
  }
  return 0;
}

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kQuantize:
      return "QUANTIZE";
    case OpKind::kMul:
      return "MUL";
    case OpKind::kAdd:
      return "ADD";
    case OpKind::kConv2D:
      return "CONV_2D";
    case OpKind::kMaxPool2D:
      return "MAX_POOL_2D";
    case OpKind::kMean:
      return "MEAN";
    case OpKind::kFullyConnected:
      return "FULLY_CONNECTED";
    case OpKind::kSoftmax:
      return "SOFTMAX";
  }
  return "?";
}

int64_t GraphTensor::num_elements() const {
  int64_t n = 1;
  for (int d : shape) n *= d;
  return n;
}

namespace {

absl::Status CheckSize(const std::string& what, size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: ", what, " has ", got, " values, the architecture needs ", want));
  }
  return absl::OkStatus();
}

absl::Status CheckBatchNorm(const std::string& what, const BatchNormWeights& bn, int channels) {
  if (bn.channels != channels) {
    return absl::InvalidArgumentError(absl::StrCat("weights: ", what, " has ", bn.channels,
                                                   " channels, the architecture needs ", channels));
  }
  for (const auto* v : {&bn.gamma, &bn.beta, &bn.moving_mean, &bn.moving_variance}) {
    if (static_cast<int>(v->size()) != channels) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", what,
                                                     " has a parameter vector of ", v->size(),
                                                     " values, needs ", channels));
    }
  }
  for (int i = 0; i < channels; ++i) {
    if (!(bn.moving_variance[i] + bn.epsilon > 0)) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", what, " channel ", i,
                                                     " has a non-positive variance + epsilon"));
    }
  }
  return absl::OkStatus();
}

// Per-channel affine form of an inference BatchNorm: y = x * mul + add.
void BatchNormAffine(const BatchNormWeights& bn, std::vector<float>* mul, std::vector<float>* add) {
  mul->resize(bn.channels);
  add->resize(bn.channels);
  for (int i = 0; i < bn.channels; ++i) {
    const double m =
        bn.gamma[i] / std::sqrt(static_cast<double>(bn.moving_variance[i]) + bn.epsilon);
    (*mul)[i] = static_cast<float>(m);
    (*add)[i] = static_cast<float>(bn.beta[i] - bn.moving_mean[i] * m);
  }
}

class GraphBuilder {
 public:
  explicit GraphBuilder(Graph* g) : g_(g) {}

  int Activation(const std::string& name, std::vector<int> shape) {
    GraphTensor t;
    t.name = name;
    t.shape = std::move(shape);
    return Add(std::move(t));
  }
  int Constant(const std::string& name, std::vector<int> shape, std::vector<float> values) {
    GraphTensor t;
    t.name = name;
    t.shape = std::move(shape);
    t.constant = true;
    t.values = std::move(values);
    return Add(std::move(t));
  }
  int Int32Constant(const std::string& name, std::vector<int> shape,
                    const std::vector<int32_t>& v) {
    GraphTensor t;
    t.name = name;
    t.shape = std::move(shape);
    t.constant = true;
    t.type = ElementType::kInt32;
    for (int32_t x : v) {
      for (int b = 0; b < 4; ++b)
        t.data.push_back(static_cast<uint8_t>((static_cast<uint32_t>(x) >> (8 * b)) & 0xff));
    }
    return Add(std::move(t));
  }
  void Op(OpKind kind, std::vector<int> inputs, int output, bool relu = false) {
    g_->ops.push_back(GraphOp{kind, std::move(inputs), {output}, relu});
  }
  const GraphTensor& T(int i) const { return g_->tensors[i]; }

 private:
  int Add(GraphTensor t) {
    g_->tensors.push_back(std::move(t));
    return static_cast<int>(g_->tensors.size()) - 1;
  }
  Graph* g_;
};

}  // namespace

absl::Status CheckWeights(const Architecture& arch, const ModelWeights& w) {
  const int c = arch.c();
  if (static_cast<int>(w.convs.size()) != c + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: ", w.convs.size(), " convolutions, the architecture has ", c + 1));
  }
  if (static_cast<int>(w.batch_norms.size()) != c + 1) {
    return absl::InvalidArgumentError(absl::StrCat("weights: ", w.batch_norms.size(),
                                                   " batch norms, the architecture has ", c + 1));
  }
  int cin = arch.spec.input.channels;
  for (int i = 0; i <= c; ++i) {
    const ConvWeights& cw = w.convs[i];
    const int cout = arch.channels[i];
    const std::string name = absl::StrCat("conv ", i);
    if (cw.in_channels != cin || cw.out_channels != cout) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " is ", cw.in_channels,
                                                     "->", cw.out_channels,
                                                     ", the architecture needs ", cin, "->", cout));
    }
    absl::Status s = CheckSize(name + " kernel", cw.kernel.size(), int64_t{cout} * 9 * cin);
    if (!s.ok()) return s;
    s = CheckSize(name + " bias", cw.bias.size(), cout);
    if (!s.ok()) return s;
    const bool v2023 = arch.spec.variant == Variant::k2023;
    // 2023: batch_norms[i] normalises the conv's input; 2024: its output.
    s = CheckBatchNorm(absl::StrCat("batch norm ", i), w.batch_norms[i], v2023 ? cin : cout);
    if (!s.ok()) return s;
    cin = cout;
  }
  const DenseWeights& d = w.dense;
  if (d.in_features != cin || d.out_features != arch.spec.classes) {
    return absl::InvalidArgumentError(absl::StrCat("weights: dense is ", d.in_features, "->",
                                                   d.out_features, ", the architecture needs ", cin,
                                                   "->", arch.spec.classes));
  }
  absl::Status s = CheckSize("dense kernel", d.kernel.size(), int64_t{cin} * arch.spec.classes);
  if (!s.ok()) return s;
  return CheckSize("dense bias", d.bias.size(), arch.spec.classes);
}

absl::StatusOr<Graph> BuildFloatGraph(const Architecture& arch, const ModelWeights& w) {
  absl::Status status = CheckWeights(arch, w);
  if (!status.ok()) return status;
  Graph g;
  g.spec = arch.spec;
  GraphBuilder b(&g);
  const bool v2023 = arch.spec.variant == Variant::k2023;
  int h = arch.spec.input.height, wd = arch.spec.input.width, ch = arch.spec.input.channels;
  int x = b.Activation("input", {1, h, wd, ch});
  g.input = x;

  auto batch_norm = [&](const std::string& name, const BatchNormWeights& bn) {
    std::vector<float> mul, add;
    BatchNormAffine(bn, &mul, &add);
    const int m = b.Constant(name + "/mul/c", {ch}, mul);
    const int mo = b.Activation(name + "/mul", {1, h, wd, ch});
    b.Op(OpKind::kMul, {x, m}, mo);
    const int a = b.Constant(name + "/add/c", {ch}, add);
    const int ao = b.Activation(name + "/add", {1, h, wd, ch});
    b.Op(OpKind::kAdd, {mo, a}, ao);
    x = ao;
  };
  auto conv = [&](int i) {
    const ConvWeights& cw = w.convs[i];
    std::vector<float> kernel = cw.kernel, bias = cw.bias;
    if (!v2023) {  // fold the following BatchNorm into the conv
      std::vector<float> mul, add;
      BatchNormAffine(w.batch_norms[i], &mul, &add);
      const size_t per_out = static_cast<size_t>(9) * cw.in_channels;
      for (int o = 0; o < cw.out_channels; ++o) {
        for (size_t j = 0; j < per_out; ++j) kernel[o * per_out + j] *= mul[o];
        bias[o] = bias[o] * mul[o] + add[o];
      }
    }
    const std::string name = absl::StrCat("conv", i);
    const int wt = b.Constant(name + "/w", {cw.out_channels, 3, 3, cw.in_channels}, kernel);
    const int bt = b.Constant(name + "/b", {cw.out_channels}, bias);
    ch = cw.out_channels;
    const int out = b.Activation(name, {1, h, wd, ch});
    b.Op(OpKind::kConv2D, {x, wt, bt}, out, /*relu=*/true);
    x = out;
  };

  if (v2023) {
    const int c = b.Constant("rescale/c", {}, {1.0f / 255.0f});
    const int out = b.Activation("rescale", {1, h, wd, ch});
    b.Op(OpKind::kMul, {x, c}, out);
    x = out;
    batch_norm("bn0", w.batch_norms[0]);
  }
  conv(0);
  for (int i = 1; i <= arch.c(); ++i) {
    h /= 2;
    wd /= 2;
    const int pool = b.Activation(absl::StrCat("pool", i), {1, h, wd, ch});
    b.Op(OpKind::kMaxPool2D, {x}, pool);
    x = pool;
    if (v2023) batch_norm(absl::StrCat("bn", i), w.batch_norms[i]);
    conv(i);
  }
  const int axes = b.Int32Constant("mean/axes", {2}, {1, 2});
  const int mean = b.Activation("mean", {1, ch});
  b.Op(OpKind::kMean, {x, axes}, mean);
  const int fw = b.Constant("fc/w", {w.dense.out_features, w.dense.in_features}, w.dense.kernel);
  const int fb = b.Constant("fc/b", {w.dense.out_features}, w.dense.bias);
  const int fc = b.Activation("fc", {1, arch.spec.classes});
  b.Op(OpKind::kFullyConnected, {mean, fw, fb}, fc);
  const int sm = b.Activation("softmax", {1, arch.spec.classes});
  b.Op(OpKind::kSoftmax, {fc}, sm);
  g.output = sm;
  return g;
}

ModelWeights PlaceholderWeights(const Architecture& arch) {
  ModelWeights w;
  const bool v2023 = arch.spec.variant == Variant::k2023;
  int cin = arch.spec.input.channels;
  for (int i = 0; i <= arch.c(); ++i) {
    const int cout = arch.channels[i];
    ConvWeights cw;
    cw.in_channels = cin;
    cw.out_channels = cout;
    cw.kernel.assign(static_cast<size_t>(cout) * 9 * cin, 0.0f);
    cw.bias.assign(cout, 0.0f);
    w.convs.push_back(cw);
    BatchNormWeights bn;
    bn.channels = v2023 ? cin : cout;
    bn.gamma.assign(bn.channels, 1.0f);
    bn.beta.assign(bn.channels, 0.0f);
    bn.moving_mean.assign(bn.channels, 0.0f);
    bn.moving_variance.assign(bn.channels, 1.0f);
    w.batch_norms.push_back(bn);
    cin = cout;
  }
  w.dense.in_features = cin;
  w.dense.out_features = arch.spec.classes;
  w.dense.kernel.assign(static_cast<size_t>(cin) * arch.spec.classes, 0.0f);
  w.dense.bias.assign(arch.spec.classes, 0.0f);
  return w;
}

std::string FormatGraph(const Graph& g) {
  std::string out;
  auto describe = [&](int i) {
    const GraphTensor& t = g.tensor(i);
    std::string s =
        absl::StrCat(t.name, "[", absl::StrJoin(t.shape, ","), "]", ElementTypeName(t.type));
    if (!t.quant.empty()) {
      absl::StrAppend(&s, "(s=", t.quant.scale[0], ",zp=", t.quant.zero_point[0],
                      t.quant.scale.size() > 1 ? ",per-channel" : "", ")");
    }
    return s;
  };
  for (const GraphOp& op : g.ops) {
    std::vector<std::string> ins, outs;
    for (int i : op.inputs) ins.push_back(describe(i));
    for (int i : op.outputs) outs.push_back(describe(i));
    absl::StrAppend(&out, OpKindName(op.kind), op.fused_relu ? "(RELU)" : "", " ",
                    absl::StrJoin(ins, " "), " -> ", absl::StrJoin(outs, " "), "\n");
  }
  return out;
}

}  // namespace nanonas
