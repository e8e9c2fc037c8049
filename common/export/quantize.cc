#include "common/export/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/export/inference.h"

namespace nanonas {
namespace {

constexpr float kSoftmaxScale = 1.0f / 256.0f;

void PutInt32(int32_t v, std::vector<uint8_t>* out) {
  for (int b = 0; b < 4; ++b)
    out->push_back(static_cast<uint8_t>((static_cast<uint32_t>(v) >> (8 * b)) & 0xff));
}

int8_t QuantizeValue(float v, float scale, int32_t zero_point, int32_t lo, int32_t hi) {
  const long q = std::lround(static_cast<double>(v) / scale) + zero_point;
  return static_cast<int8_t>(std::clamp<long>(q, lo, hi));
}

// Symmetric int8 ([-127, 127]) scale for a set of values.
float SymmetricScale(const float* v, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(v[i]));
  return m > 0 ? m / 127.0f : 1.0f;
}

void QuantizeBias(const GraphTensor& fb, const std::vector<float>& scales, GraphTensor* qb) {
  qb->type = ElementType::kInt32;
  qb->quant.scale = scales;
  qb->quant.zero_point.assign(scales.size(), 0);
  qb->data.clear();
  for (size_t i = 0; i < fb.values.size(); ++i) {
    const double s = scales.size() > 1 ? scales[i] : scales[0];
    const double q = std::round(fb.values[i] / s);
    PutInt32(static_cast<int32_t>(std::clamp<double>(q, std::numeric_limits<int32_t>::min(),
                                                     std::numeric_limits<int32_t>::max())),
             &qb->data);
  }
  qb->values.clear();
}

void SetPerTensor(GraphTensor* t, ElementType type, float scale, int32_t zero_point) {
  t->type = type;
  t->quant.scale = {scale};
  t->quant.zero_point = {zero_point};
  t->quant.quantized_dimension = 0;
}

}  // namespace

void AsymmetricParams(float min, float max, float* scale, int32_t* zero_point) {
  const float qmin = -128.0f, qmax = 127.0f;
  float rmin = std::min(min, 0.0f), rmax = std::max(max, 0.0f);
  if (!(rmax > rmin)) rmax = rmin + 1.0f;  // an all-zero tensor (a dead ReLU): any scale will do
  *scale = (rmax - rmin) / (qmax - qmin);
  const float zp_from_min = qmin - rmin / *scale;
  const float zp_from_max = qmax - rmax / *scale;
  const float err_min = std::fabs(qmin) + std::fabs(rmin / *scale);
  const float err_max = std::fabs(qmax) + std::fabs(rmax / *scale);
  const float zp = err_min < err_max ? zp_from_min : zp_from_max;
  if (zp < qmin) {
    *zero_point = -128;
  } else if (zp > qmax) {
    *zero_point = 127;
  } else {
    *zero_point = static_cast<int32_t>(std::round(zp));
  }
}

absl::StatusOr<CalibrationRanges> Calibrate(const Graph& g, const Dataset& data,
                                            const std::vector<int64_t>& indices) {
  const GraphTensor& in = g.tensor(g.input);
  if (in.shape.size() != 4 || in.shape[1] != data.shape.height || in.shape[2] != data.shape.width ||
      in.shape[3] != data.shape.channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration images are ", FormatInputShape(data.shape),
                     " but the model's input is ", FormatInputShape(g.spec.input)));
  }
  if (indices.empty()) return absl::InvalidArgumentError("no calibration images given");
  CalibrationRanges r;
  r.min.assign(g.tensors.size(), std::numeric_limits<float>::infinity());
  r.max.assign(g.tensors.size(), -std::numeric_limits<float>::infinity());
  r.min_image_max.assign(g.tensors.size(), std::numeric_limits<float>::infinity());
  r.channel_min.resize(g.tensors.size());
  r.channel_max.resize(g.tensors.size());
  for (size_t t = 0; t < g.tensors.size(); ++t) {
    if (g.tensors[t].constant) continue;
    const size_t channels =
        g.tensors[t].shape.empty() ? 1 : static_cast<size_t>(g.tensors[t].shape.back());
    r.channel_min[t].assign(channels, std::numeric_limits<float>::infinity());
    r.channel_max[t].assign(channels, -std::numeric_limits<float>::infinity());
  }
  std::vector<std::vector<float>> values;
  for (int64_t idx : indices) {
    if (idx < 0 || idx >= data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "calibration image index ", idx, " is outside the dataset (", data.size(), " images)"));
    }
    NANONAS_ASSIGN_OR_RETURN(std::vector<float> out, RunFloatGraph(g, data.image(idx), &values));
    (void)out;
    for (size_t t = 0; t < values.size(); ++t) {
      for (float v : values[t]) {
        if (!std::isfinite(v)) {
          return absl::InvalidArgumentError(absl::StrCat("tensor '", g.tensors[t].name,
                                                         "' is not finite on calibration image ",
                                                         idx, ": the weights are broken"));
        }
        r.min[t] = std::min(r.min[t], v);
        r.max[t] = std::max(r.max[t], v);
      }
      if (!values[t].empty()) {
        r.min_image_max[t] =
            std::min(r.min_image_max[t], *std::max_element(values[t].begin(), values[t].end()));
      }
      std::vector<float>& cmin = r.channel_min[t];
      std::vector<float>& cmax = r.channel_max[t];
      if (cmin.empty()) continue;
      for (size_t j = 0; j < values[t].size(); ++j) {
        const size_t ch = j % cmin.size();
        cmin[ch] = std::min(cmin[ch], values[t][j]);
        cmax[ch] = std::max(cmax[ch], values[t][j]);
      }
    }
    ++r.images;
  }
  return r;
}

absl::StatusOr<Graph> QuantizeGraph(const Graph& fg, const CalibrationRanges& ranges) {
  return QuantizeGraph(fg, ranges, QuantizeOptions());
}

namespace {

// A convolution's weights as per-output-channel symmetric int8; returns each channel's bias scale
// (input scale x weight scale).
std::vector<float> QuantizeConvWeights(float in_scale, GraphTensor* w) {
  const int cout = w->shape[0];
  const size_t per = static_cast<size_t>(w->num_elements() / cout);
  w->type = ElementType::kInt8;
  w->quant.scale.resize(cout);
  w->quant.zero_point.assign(cout, 0);
  w->quant.quantized_dimension = 0;
  w->data.resize(w->values.size());
  std::vector<float> bias_scales(cout);
  for (int o = 0; o < cout; ++o) {
    const float s = SymmetricScale(&w->values[o * per], per);
    w->quant.scale[o] = s;
    bias_scales[o] = in_scale * s;
    for (size_t j = 0; j < per; ++j) {
      w->data[o * per + j] =
          static_cast<uint8_t>(QuantizeValue(w->values[o * per + j], s, 0, -127, 127));
    }
  }
  w->values.clear();
  return bias_scales;
}

// A dense layer's weights as per-tensor symmetric int8; returns their scale.
float QuantizeDenseWeights(GraphTensor* w) {
  const float s = SymmetricScale(w->values.data(), w->values.size());
  SetPerTensor(w, ElementType::kInt8, s, 0);
  w->data.clear();
  for (float v : w->values)
    w->data.push_back(static_cast<uint8_t>(QuantizeValue(v, s, 0, -127, 127)));
  w->values.clear();
  return s;
}

// The logits' int8 range: the calibrated one, its low end raised to logit_span below the lowest
// calibrated top logit when that is known (options.logit_span > 0).
void SetLogitRange(const CalibrationRanges& ranges, const QuantizeOptions& options, int fo,
                   GraphTensor* logits) {
  float lo = ranges.min[fo];
  if (options.logit_span > 0 && static_cast<size_t>(fo) < ranges.min_image_max.size() &&
      std::isfinite(ranges.min_image_max[fo])) {
    lo = std::max(lo, ranges.min_image_max[fo] - options.logit_span);
  }
  float scale;
  int32_t zp;
  AsymmetricParams(lo, ranges.max[fo], &scale, &zp);
  SetPerTensor(logits, ElementType::kInt8, scale, zp);
}

// The quantized graph's frame: a uint8 "input" (tensor 0) QUANTIZEd to the int8 "input_i8", then
// the float graph's tensors shifted by one (tensor i becomes i + 1), ops still to add.
Graph StartQuantizedGraph(const Graph& fg) {
  Graph q;
  q.spec = fg.spec;
  q.quantized = true;
  GraphTensor input = fg.tensor(fg.input);
  input.name = "input";
  SetPerTensor(&input, ElementType::kUint8, 1.0f, 0);
  q.tensors.push_back(input);
  for (const GraphTensor& t : fg.tensors) q.tensors.push_back(t);
  GraphTensor& input_i8 = q.tensors[fg.input + 1];
  input_i8.name = "input_i8";
  SetPerTensor(&input_i8, ElementType::kInt8, 1.0f, -128);
  q.input = 0;
  q.ops.push_back(GraphOp{OpKind::kQuantize, {0}, {fg.input + 1}, false});
  return q;
}

// Appends the uint8 "output" that the int8 softmax is QUANTIZEd into, and makes it the output.
void FinishQuantizedGraph(const Graph& fg, Graph* q) {
  GraphTensor output = q->tensors[fg.output + 1];
  output.name = "output";
  output.constant = false;
  SetPerTensor(&output, ElementType::kUint8, kSoftmaxScale, 0);
  q->tensors.push_back(output);
  q->output = static_cast<int>(q->tensors.size()) - 1;
  q->ops.push_back(GraphOp{OpKind::kQuantize, {fg.output + 1}, {q->output}, false});
}

}  // namespace

// One pass over the ops with a short case per op kind (~90 lines): the cases read best side by
// side, the weight and range work is in the helpers above.
absl::StatusOr<Graph> QuantizeGraph(const Graph& fg, const CalibrationRanges& ranges,
                                    const QuantizeOptions& options) {
  if (fg.quantized) return absl::InvalidArgumentError("the graph is already quantized");
  if (ranges.min.size() != fg.tensors.size() || ranges.max.size() != fg.tensors.size()) {
    return absl::InvalidArgumentError(absl::StrCat("calibration ranges cover ", ranges.min.size(),
                                                   " tensors, the graph has ", fg.tensors.size()));
  }
  Graph q = StartQuantizedGraph(fg);
  auto map = [](int i) { return i + 1; };

  std::vector<bool> done(q.tensors.size(), false);
  done[0] = done[map(fg.input)] = true;
  auto activation = [&](int fi) {
    GraphTensor& t = q.tensors[map(fi)];
    float scale;
    int32_t zp;
    AsymmetricParams(ranges.min[fi], ranges.max[fi], &scale, &zp);
    SetPerTensor(&t, ElementType::kInt8, scale, zp);
  };
  auto constant_asymmetric = [&](int fi) {
    GraphTensor& t = q.tensors[map(fi)];
    const auto [mn, mx] = std::minmax_element(t.values.begin(), t.values.end());
    float scale;
    int32_t zp;
    AsymmetricParams(*mn, *mx, &scale, &zp);
    SetPerTensor(&t, ElementType::kInt8, scale, zp);
    t.data.clear();
    for (float v : t.values)
      t.data.push_back(static_cast<uint8_t>(QuantizeValue(v, scale, zp, -128, 127)));
    t.values.clear();
  };

  for (const GraphOp& op : fg.ops) {
    GraphOp qop = op;
    for (int& i : qop.inputs) i = map(i);
    for (int& i : qop.outputs) i = map(i);
    const int fo = op.outputs[0];
    const GraphTensor& qin = q.tensors[qop.inputs[0]];
    if (qin.quant.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(OpKindName(op.kind), " reads '", qin.name, "' before it is produced"));
    }
    const float in_scale = qin.quant.scale[0];
    switch (op.kind) {
      case OpKind::kMul:
      case OpKind::kAdd: {
        constant_asymmetric(op.inputs[1]);
        activation(fo);
        if (op.kind == OpKind::kAdd) {
          // TFLite's ADD needs output_scale > 2 * max(input scales) / 2^20; keep a margin.
          GraphTensor& t = q.tensors[map(fo)];
          const float need =
              2.0f * std::max(in_scale, q.tensors[qop.inputs[1]].quant.scale[0]) / (1 << 19);
          if (t.quant.scale[0] < need) t.quant.scale[0] = need;
        }
        break;
      }
      case OpKind::kConv2D: {
        const std::vector<float> bias_scales =
            QuantizeConvWeights(in_scale, &q.tensors[map(op.inputs[1])]);
        QuantizeBias(fg.tensor(op.inputs[2]), bias_scales, &q.tensors[map(op.inputs[2])]);
        activation(fo);
        break;
      }
      case OpKind::kMaxPool2D: {
        GraphTensor& t = q.tensors[map(fo)];
        t.type = ElementType::kInt8;
        t.quant = qin.quant;
        break;
      }
      case OpKind::kMean:
        activation(fo);
        break;
      case OpKind::kFullyConnected: {
        const float s = QuantizeDenseWeights(&q.tensors[map(op.inputs[1])]);
        QuantizeBias(fg.tensor(op.inputs[2]), {in_scale * s}, &q.tensors[map(op.inputs[2])]);
        SetLogitRange(ranges, options, fo, &q.tensors[map(fo)]);
        break;
      }
      case OpKind::kSoftmax:
        SetPerTensor(&q.tensors[map(fo)], ElementType::kInt8, kSoftmaxScale, -128);
        break;
      case OpKind::kQuantize:
        return absl::InvalidArgumentError("a float graph must not contain QUANTIZE");
    }
    q.ops.push_back(qop);
  }
  FinishQuantizedGraph(fg, &q);
  return q;
}

namespace {

// Range of channel c of tensor t, 0 included (what an asymmetric int8 scale must span).
double ChannelRange(const CalibrationRanges& r, int t, int c) {
  return static_cast<double>(std::max(r.channel_max[t][c], 0.0f)) -
         static_cast<double>(std::min(r.channel_min[t][c], 0.0f));
}

// Normalizes positive factors to geometric mean 1, clamps them to [1/kMaxFactor, kMaxFactor] and
// sets the invalid ones (<= 0 or not finite: a dead channel) to 1.
void NormalizeFactors(std::vector<double>* f) {
  constexpr double kMaxFactor = 64.0;
  double log_sum = 0;
  int n = 0;
  for (double v : *f) {
    if (v > 0 && std::isfinite(v)) log_sum += std::log(v), ++n;
  }
  const double mean = n > 0 ? std::exp(log_sum / n) : 1.0;
  for (double& v : *f) {
    v = v > 0 && std::isfinite(v) ? std::clamp(v / mean, 1.0 / kMaxFactor, kMaxFactor) : 1.0;
  }
}

// Multiplies output channel o of an OHWI conv (and its bias) by f[o].
void ScaleConvOutputs(GraphTensor* w, GraphTensor* b, const std::vector<double>& f) {
  const size_t per = w->values.size() / f.size();
  for (size_t o = 0; o < f.size(); ++o) {
    for (size_t j = 0; j < per; ++j)
      w->values[o * per + j] = static_cast<float>(w->values[o * per + j] * f[o]);
    b->values[o] = static_cast<float>(b->values[o] * f[o]);
  }
}

// Divides input channel c (the last dimension) of a weight tensor by f[c].
void DivideInputChannels(GraphTensor* w, const std::vector<double>& f) {
  for (size_t j = 0; j < w->values.size(); ++j) {
    w->values[j] = static_cast<float>(w->values[j] / f[j % f.size()]);
  }
}

bool HasChannelRanges(const CalibrationRanges& r, int t, size_t c) {
  return r.channel_min[t].size() == c && r.channel_max[t].size() == c;
}

// Whether op j reads op i's output as its first input.
bool Chained(const std::vector<GraphOp>& ops, size_t i, size_t j) {
  return ops[j].inputs[0] == ops[i].outputs[0];
}

absl::Status MissingRanges(const Graph& g, int tensor) {
  return absl::InvalidArgumentError(
      absl::StrCat("no per-channel ranges for '", g.tensors[tensor].name, "'"));
}

// MUL(m) -> ADD(a) -> CONV_2D: u_c balances the MUL and ADD outputs' channel ranges.
absl::Status EqualizeMulAddConv(const CalibrationRanges& r, Graph* g) {
  const std::vector<GraphOp>& ops = g->ops;
  for (size_t i = 0; i + 2 < ops.size(); ++i) {
    if (ops[i].kind != OpKind::kMul || ops[i + 1].kind != OpKind::kAdd ||
        ops[i + 2].kind != OpKind::kConv2D || !Chained(ops, i, i + 1) ||
        !Chained(ops, i + 1, i + 2)) {
      continue;
    }
    GraphTensor& m = g->tensors[ops[i].inputs[1]];
    GraphTensor& a = g->tensors[ops[i + 1].inputs[1]];
    GraphTensor& w = g->tensors[ops[i + 2].inputs[1]];
    const size_t channels = m.values.size();
    const int mul_out = ops[i].outputs[0], add_out = ops[i + 1].outputs[0];
    if (channels < 2 || a.values.size() != channels || w.shape.back() != static_cast<int>(channels))
      continue;
    if (!HasChannelRanges(r, mul_out, channels) || !HasChannelRanges(r, add_out, channels)) {
      return MissingRanges(*g, mul_out);
    }
    std::vector<double> u(channels);
    for (size_t c = 0; c < channels; ++c) {
      u[c] = 1.0 / std::sqrt(ChannelRange(r, mul_out, static_cast<int>(c)) *
                             ChannelRange(r, add_out, static_cast<int>(c)));
    }
    NormalizeFactors(&u);
    for (size_t c = 0; c < channels; ++c) {
      m.values[c] = static_cast<float>(m.values[c] * u[c]);
      a.values[c] = static_cast<float>(a.values[c] * u[c]);
    }
    DivideInputChannels(&w, u);
  }
  return absl::OkStatus();
}

// Whether ops[i - 2] is a CONV_2D with fused RELU feeding `middle` feeding `last` == ops[i].
bool ReluConvThen(const std::vector<GraphOp>& ops, size_t i, OpKind middle, OpKind last) {
  return ops[i].kind == last && ops[i - 1].kind == middle && ops[i - 2].kind == OpKind::kConv2D &&
         ops[i - 2].fused_relu && Chained(ops, i - 2, i - 1) && Chained(ops, i - 1, i);
}

// CONV_2D(RELU) -> MAX_POOL_2D -> MUL(m): t_c balances the conv output's channel range and m_c.
absl::Status EqualizeConvPoolMul(const CalibrationRanges& r, Graph* g) {
  const std::vector<GraphOp>& ops = g->ops;
  for (size_t i = 2; i < ops.size(); ++i) {
    if (!ReluConvThen(ops, i, OpKind::kMaxPool2D, OpKind::kMul)) continue;
    GraphTensor& m = g->tensors[ops[i].inputs[1]];
    GraphTensor& w = g->tensors[ops[i - 2].inputs[1]];
    GraphTensor& b = g->tensors[ops[i - 2].inputs[2]];
    const size_t channels = m.values.size();
    const int conv_out = ops[i - 2].outputs[0];
    if (channels < 2 || w.shape[0] != static_cast<int>(channels)) continue;
    if (!HasChannelRanges(r, conv_out, channels)) return MissingRanges(*g, conv_out);
    std::vector<double> t(channels);
    for (size_t c = 0; c < channels; ++c) {
      t[c] = std::sqrt(std::fabs(m.values[c]) / ChannelRange(r, conv_out, static_cast<int>(c)));
    }
    NormalizeFactors(&t);
    ScaleConvOutputs(&w, &b, t);
    for (size_t c = 0; c < channels; ++c) m.values[c] = static_cast<float>(m.values[c] / t[c]);
  }
  return absl::OkStatus();
}

// CONV_2D(RELU) -> MEAN -> FULLY_CONNECTED: t_c balances the conv channel and the dense column.
absl::Status EqualizeConvMeanDense(const CalibrationRanges& r, Graph* g) {
  const std::vector<GraphOp>& ops = g->ops;
  for (size_t i = 2; i < ops.size(); ++i) {
    if (!ReluConvThen(ops, i, OpKind::kMean, OpKind::kFullyConnected)) continue;
    GraphTensor& d = g->tensors[ops[i].inputs[1]];
    GraphTensor& w = g->tensors[ops[i - 2].inputs[1]];
    GraphTensor& b = g->tensors[ops[i - 2].inputs[2]];
    const size_t channels = static_cast<size_t>(w.shape[0]);
    const int conv_out = ops[i - 2].outputs[0];
    if (channels < 2 || d.shape.back() != static_cast<int>(channels)) continue;
    if (!HasChannelRanges(r, conv_out, channels)) return MissingRanges(*g, conv_out);
    std::vector<double> col(channels, 0.0), t(channels);
    for (size_t j = 0; j < d.values.size(); ++j) {
      col[j % channels] = std::max(col[j % channels], static_cast<double>(std::fabs(d.values[j])));
    }
    for (size_t c = 0; c < channels; ++c) {
      t[c] = std::sqrt(col[c] / ChannelRange(r, conv_out, static_cast<int>(c)));
    }
    NormalizeFactors(&t);
    ScaleConvOutputs(&w, &b, t);
    DivideInputChannels(&d, t);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Graph> EqualizeChannels(const Graph& fg, const CalibrationRanges& r) {
  if (fg.quantized) return absl::InvalidArgumentError("EqualizeChannels needs a float graph");
  if (r.channel_min.size() != fg.tensors.size() || r.channel_max.size() != fg.tensors.size()) {
    return absl::InvalidArgumentError(absl::StrCat("per-channel calibration ranges cover ",
                                                   r.channel_min.size(), " tensors, the graph has ",
                                                   fg.tensors.size()));
  }
  Graph g = fg;
  NANONAS_RETURN_IF_ERROR(EqualizeMulAddConv(r, &g));
  NANONAS_RETURN_IF_ERROR(EqualizeConvPoolMul(r, &g));
  NANONAS_RETURN_IF_ERROR(EqualizeConvMeanDense(r, &g));
  return g;
}

absl::StatusOr<Graph> QuantizeModel(const Architecture& arch, const ModelWeights& weights,
                                    const Dataset& data, const std::vector<int64_t>& representative,
                                    int min_images, const QuantizeOptions& options) {
  if (static_cast<int>(representative.size()) < min_images) {
    return absl::InvalidArgumentError(absl::StrCat("quantization needs at least ", min_images,
                                                   " representative images, got ",
                                                   representative.size()));
  }
  NANONAS_ASSIGN_OR_RETURN(Graph fg, BuildFloatGraph(arch, weights));
  NANONAS_ASSIGN_OR_RETURN(CalibrationRanges ranges, Calibrate(fg, data, representative));
  if (!options.equalize) return QuantizeGraph(fg, ranges, options);
  NANONAS_ASSIGN_OR_RETURN(Graph equalized, EqualizeChannels(fg, ranges));
  NANONAS_ASSIGN_OR_RETURN(ranges, Calibrate(equalized, data, representative));
  return QuantizeGraph(equalized, ranges, options);
}

absl::StatusOr<Graph> PlaceholderQuantizedGraph(const Architecture& arch) {
  NANONAS_ASSIGN_OR_RETURN(Graph fg, BuildFloatGraph(arch, PlaceholderWeights(arch)));
  CalibrationRanges r;
  r.min.assign(fg.tensors.size(), 0.0f);
  r.max.assign(fg.tensors.size(), 1.0f);
  return QuantizeGraph(fg, r);
}

}  // namespace nanonas
