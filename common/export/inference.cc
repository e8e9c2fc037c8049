#include "common/export/inference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/export/fixed_point.h"

namespace nanonas {
namespace fp = fixed_point;
namespace {

struct Dims4 {
  int h = 1, w = 1, c = 1;
};
Dims4 Nhwc(const GraphTensor& t) {
  Dims4 d;
  if (t.shape.size() == 4) {
    d.h = t.shape[1];
    d.w = t.shape[2];
    d.c = t.shape[3];
  } else if (!t.shape.empty()) {
    d.c = t.shape.back();
  }
  return d;
}

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

// ---------------------------------------------------------------------------------------------
// Float kernels (NHWC, batch 1).

void FloatConv3x3Same(const std::vector<float>& in, Dims4 d, const std::vector<float>& w,
                      const std::vector<float>& bias, int cout, bool relu,
                      std::vector<float>* out) {
  out->assign(static_cast<size_t>(d.h) * d.w * cout, 0.0f);
  for (int y = 0; y < d.h; ++y) {
    for (int x = 0; x < d.w; ++x) {
      for (int o = 0; o < cout; ++o) {
        double acc = bias[o];
        for (int ky = 0; ky < 3; ++ky) {
          const int iy = y + ky - 1;
          if (iy < 0 || iy >= d.h) continue;
          for (int kx = 0; kx < 3; ++kx) {
            const int ix = x + kx - 1;
            if (ix < 0 || ix >= d.w) continue;
            const float* ip = &in[(static_cast<size_t>(iy) * d.w + ix) * d.c];
            const float* wp = &w[((static_cast<size_t>(o) * 3 + ky) * 3 + kx) * d.c];
            for (int i = 0; i < d.c; ++i) acc += static_cast<double>(ip[i]) * wp[i];
          }
        }
        float v = static_cast<float>(acc);
        if (relu) v = std::max(v, 0.0f);
        (*out)[(static_cast<size_t>(y) * d.w + x) * cout + o] = v;
      }
    }
  }
}

void FloatMaxPool2x2(const std::vector<float>& in, Dims4 d, std::vector<float>* out) {
  const int oh = d.h / 2, ow = d.w / 2;
  out->assign(static_cast<size_t>(oh) * ow * d.c, 0.0f);
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      for (int c = 0; c < d.c; ++c) {
        float m = -std::numeric_limits<float>::infinity();
        for (int ky = 0; ky < 2; ++ky) {
          for (int kx = 0; kx < 2; ++kx) {
            m = std::max(m, in[((static_cast<size_t>(2 * y + ky)) * d.w + 2 * x + kx) * d.c + c]);
          }
        }
        (*out)[(static_cast<size_t>(y) * ow + x) * d.c + c] = m;
      }
    }
  }
}

void FloatMean(const std::vector<float>& in, Dims4 d, std::vector<float>* out) {
  out->assign(d.c, 0.0f);
  for (int c = 0; c < d.c; ++c) {
    double s = 0;
    for (int p = 0; p < d.h * d.w; ++p) s += in[static_cast<size_t>(p) * d.c + c];
    (*out)[c] = static_cast<float>(s / (d.h * d.w));
  }
}

void FloatDense(const std::vector<float>& in, const std::vector<float>& w,
                const std::vector<float>& bias, std::vector<float>* out) {
  const int n_out = static_cast<int>(bias.size()), n_in = static_cast<int>(in.size());
  out->assign(n_out, 0.0f);
  for (int o = 0; o < n_out; ++o) {
    double acc = bias[o];
    for (int i = 0; i < n_in; ++i)
      acc += static_cast<double>(w[static_cast<size_t>(o) * n_in + i]) * in[i];
    (*out)[o] = static_cast<float>(acc);
  }
}

void FloatSoftmax(const std::vector<float>& in, std::vector<float>* out) {
  const float m = *std::max_element(in.begin(), in.end());
  out->resize(in.size());
  double sum = 0;
  for (size_t i = 0; i < in.size(); ++i) sum += std::exp(static_cast<double>(in[i] - m));
  for (size_t i = 0; i < in.size(); ++i) {
    (*out)[i] = static_cast<float>(std::exp(static_cast<double>(in[i] - m)) / sum);
  }
}

// ---------------------------------------------------------------------------------------------
// Integer kernels, following TFLite Micro's reference kernels.

float Scale(const GraphTensor& t) { return t.quant.scale.empty() ? 1.0f : t.quant.scale[0]; }
int32_t ZeroPoint(const GraphTensor& t) {
  return t.quant.zero_point.empty() ? 0 : static_cast<int32_t>(t.quant.zero_point[0]);
}
int32_t TypeMin(ElementType t) { return t == ElementType::kUint8 ? 0 : -128; }
int32_t TypeMax(ElementType t) { return t == ElementType::kUint8 ? 255 : 127; }

// CalculateActivationRangeQuantized for NONE / RELU.
void ActivationRange(const GraphTensor& out, bool relu, int32_t* lo, int32_t* hi) {
  *lo = TypeMin(out.type);
  *hi = TypeMax(out.type);
  if (relu) {
    const int32_t zero = ZeroPoint(out) + static_cast<int32_t>(std::round(0.0f / Scale(out)));
    *lo = std::max(*lo, zero);
  }
}

// Requantize (QUANTIZE between 8-bit types).
void IntQuantize(const std::vector<int32_t>& in, const GraphTensor& ti, const GraphTensor& to,
                 std::vector<int32_t>* out) {
  int32_t multiplier;
  int shift;
  fp::QuantizeMultiplier(static_cast<double>(Scale(ti)) / static_cast<double>(Scale(to)),
                         &multiplier, &shift);
  const int32_t in_zp = ZeroPoint(ti), out_zp = ZeroPoint(to);
  out->resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const int32_t v = fp::MultiplyByQuantizedMultiplier(in[i] - in_zp, multiplier, shift) + out_zp;
    (*out)[i] = std::clamp(v, TypeMin(to.type), TypeMax(to.type));
  }
}

// MUL int8 with the second operand broadcast along the last dimension (or a scalar).
void IntMul(const std::vector<int32_t>& a, const GraphTensor& ta, const std::vector<int32_t>& b,
            const GraphTensor& tb, const GraphTensor& to, std::vector<int32_t>* out) {
  int32_t multiplier;
  int shift;
  fp::QuantizeMultiplier(static_cast<double>(Scale(ta)) * static_cast<double>(Scale(tb)) /
                             static_cast<double>(Scale(to)),
                         &multiplier, &shift);
  int32_t lo, hi;
  ActivationRange(to, false, &lo, &hi);
  const int32_t off_a = -ZeroPoint(ta), off_b = -ZeroPoint(tb), off_o = ZeroPoint(to);
  out->resize(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const int32_t va = off_a + a[i];
    const int32_t vb = off_b + b[i % b.size()];
    const int32_t r = off_o + fp::MultiplyByQuantizedMultiplier(va * vb, multiplier, shift);
    (*out)[i] = std::clamp(r, lo, hi);
  }
}

// ADD int8 (left shift 20, both inputs rescaled to twice the larger scale).
void IntAdd(const std::vector<int32_t>& a, const GraphTensor& ta, const std::vector<int32_t>& b,
            const GraphTensor& tb, const GraphTensor& to, std::vector<int32_t>* out) {
  const int left_shift = 20;
  const double twice_max = 2 * static_cast<double>(std::max(Scale(ta), Scale(tb)));
  int32_t m1, m2, mo;
  int s1, s2, so;
  fp::QuantizeMultiplier(static_cast<double>(Scale(ta)) / twice_max, &m1, &s1);
  fp::QuantizeMultiplier(static_cast<double>(Scale(tb)) / twice_max, &m2, &s2);
  fp::QuantizeMultiplier(twice_max / ((1 << left_shift) * static_cast<double>(Scale(to))), &mo,
                         &so);
  int32_t lo, hi;
  ActivationRange(to, false, &lo, &hi);
  const int32_t off_a = -ZeroPoint(ta), off_b = -ZeroPoint(tb), off_o = ZeroPoint(to);
  out->resize(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    const int32_t va = (off_a + a[i]) * (1 << left_shift);
    const int32_t vb = (off_b + b[i % b.size()]) * (1 << left_shift);
    const int32_t sa = fp::MultiplyByQuantizedMultiplierSmallerThanOneExp(va, m1, s1);
    const int32_t sb = fp::MultiplyByQuantizedMultiplierSmallerThanOneExp(vb, m2, s2);
    const int32_t r = fp::MultiplyByQuantizedMultiplierSmallerThanOneExp(sa + sb, mo, so) + off_o;
    (*out)[i] = std::clamp(r, lo, hi);
  }
}

// CONV_2D 3x3 SAME stride 1, per-channel (ConvPerChannel).
void IntConv(const std::vector<int32_t>& in, const GraphTensor& ti, Dims4 d,
             const std::vector<int32_t>& w, const GraphTensor& tw, const std::vector<int32_t>& bias,
             const GraphTensor& to, bool relu, std::vector<int32_t>* out) {
  const int cout = tw.shape[0];
  std::vector<int32_t> mult(cout);
  std::vector<int> shift(cout);
  for (int o = 0; o < cout; ++o) {
    const float ws = tw.quant.scale.size() > 1 ? tw.quant.scale[o] : tw.quant.scale[0];
    fp::QuantizeMultiplier(
        static_cast<double>(Scale(ti)) * static_cast<double>(ws) / static_cast<double>(Scale(to)),
        &mult[o], &shift[o]);
  }
  int32_t lo, hi;
  ActivationRange(to, relu, &lo, &hi);
  const int32_t in_offset = -ZeroPoint(ti), out_offset = ZeroPoint(to);
  out->assign(static_cast<size_t>(d.h) * d.w * cout, 0);
  for (int y = 0; y < d.h; ++y) {
    for (int x = 0; x < d.w; ++x) {
      for (int o = 0; o < cout; ++o) {
        int32_t acc = 0;
        for (int ky = 0; ky < 3; ++ky) {
          const int iy = y + ky - 1;
          if (iy < 0 || iy >= d.h) continue;
          for (int kx = 0; kx < 3; ++kx) {
            const int ix = x + kx - 1;
            if (ix < 0 || ix >= d.w) continue;
            const int32_t* ip = &in[(static_cast<size_t>(iy) * d.w + ix) * d.c];
            const int32_t* wp = &w[((static_cast<size_t>(o) * 3 + ky) * 3 + kx) * d.c];
            for (int i = 0; i < d.c; ++i) acc += wp[i] * (ip[i] + in_offset);
          }
        }
        acc += bias[o];
        acc = fp::MultiplyByQuantizedMultiplier(acc, mult[o], shift[o]) + out_offset;
        (*out)[(static_cast<size_t>(y) * d.w + x) * cout + o] = std::clamp(acc, lo, hi);
      }
    }
  }
}

void IntMaxPool(const std::vector<int32_t>& in, Dims4 d, std::vector<int32_t>* out) {
  const int oh = d.h / 2, ow = d.w / 2;
  out->assign(static_cast<size_t>(oh) * ow * d.c, 0);
  for (int y = 0; y < oh; ++y) {
    for (int x = 0; x < ow; ++x) {
      for (int c = 0; c < d.c; ++c) {
        int32_t m = std::numeric_limits<int8_t>::lowest();
        for (int ky = 0; ky < 2; ++ky) {
          for (int kx = 0; kx < 2; ++kx) {
            m = std::max(m, in[((static_cast<size_t>(2 * y + ky)) * d.w + 2 * x + kx) * d.c + c]);
          }
        }
        (*out)[(static_cast<size_t>(y) * ow + x) * d.c + c] = std::clamp<int32_t>(m, -128, 127);
      }
    }
  }
}

// MEAN over axes 1, 2 (tflite-micro 2023: plain integer mean when input and output share their
// quantization, else QuantizedMeanOrSum with the 1/N factor folded into the output multiplier).
void IntMean(const std::vector<int32_t>& in, const GraphTensor& ti, Dims4 d, const GraphTensor& to,
             std::vector<int32_t>* out) {
  const int64_t n = static_cast<int64_t>(d.h) * d.w;
  std::vector<int32_t> sum(d.c, 0);  // the int32 scratch accumulators
  for (int p = 0; p < d.h * d.w; ++p) {
    for (int c = 0; c < d.c; ++c) sum[c] += in[static_cast<size_t>(p) * d.c + c];
  }
  out->resize(d.c);
  if (ZeroPoint(ti) == ZeroPoint(to) && Scale(ti) == Scale(to)) {
    for (int c = 0; c < d.c; ++c) (*out)[c] = static_cast<int32_t>(sum[c] / n);
    return;
  }
  int32_t multiplier;
  int shift;
  fp::QuantizeMultiplier(static_cast<double>(Scale(ti)) / static_cast<double>(Scale(to)),
                         &multiplier, &shift);
  int extra = 63 - fp::CountLeadingZeros64(static_cast<uint64_t>(n));
  extra = std::min(extra, 32);
  extra = std::min(extra, 31 + shift);
  multiplier = static_cast<int32_t>((static_cast<int64_t>(multiplier) << extra) / n);
  shift -= extra;
  for (int c = 0; c < d.c; ++c) {
    const int32_t shifted_sum = static_cast<int32_t>(sum[c] - ZeroPoint(ti) * n);
    const int32_t v =
        fp::MultiplyByQuantizedMultiplier(shifted_sum, multiplier, shift) + ZeroPoint(to);
    (*out)[c] = std::clamp<int32_t>(v, -128, 127);
  }
}

void IntFullyConnected(const std::vector<int32_t>& in, const GraphTensor& ti,
                       const std::vector<int32_t>& w, const GraphTensor& tw,
                       const std::vector<int32_t>& bias, const GraphTensor& to,
                       std::vector<int32_t>* out) {
  int32_t multiplier;
  int shift;
  // TFLite multiplies the two float scales in float first.
  const double product = static_cast<double>(Scale(ti) * Scale(tw));
  fp::QuantizeMultiplier(product / static_cast<double>(Scale(to)), &multiplier, &shift);
  int32_t lo, hi;
  ActivationRange(to, false, &lo, &hi);
  const int n_out = tw.shape[0], n_in = tw.shape[1];
  const int32_t in_offset = -ZeroPoint(ti), out_offset = ZeroPoint(to);
  out->resize(n_out);
  for (int o = 0; o < n_out; ++o) {
    int32_t acc = 0;
    for (int i = 0; i < n_in; ++i)
      acc += w[static_cast<size_t>(o) * n_in + i] * (in[i] + in_offset);
    acc += bias[o];
    acc = fp::MultiplyByQuantizedMultiplier(acc, multiplier, shift) + out_offset;
    (*out)[o] = std::clamp(acc, lo, hi);
  }
}

// SOFTMAX int8 -> int8 (scale 1/256, zero point -128), beta 1.
void IntSoftmax(const std::vector<int32_t>& in, const GraphTensor& ti, std::vector<int32_t>* out) {
  constexpr int kScaledDiffIntegerBits = 5;
  constexpr int kAccumulationIntegerBits = 12;
  int32_t multiplier;
  int left_shift;
  fp::PreprocessSoftmaxScaling(1.0, static_cast<double>(Scale(ti)), kScaledDiffIntegerBits,
                               &multiplier, &left_shift);
  const int diff_min =
      static_cast<int>(-1.0 * fp::CalculateInputRadius(kScaledDiffIntegerBits, left_shift));
  const int32_t max_in = *std::max_element(in.begin(), in.end());
  int32_t sum_of_exps = 0;  // Q12.19
  for (int32_t v : in) {
    const int32_t diff = v - max_in;
    if (diff >= diff_min) {
      const int32_t scaled =
          fp::MultiplyByQuantizedMultiplierGreaterThanOne(diff, multiplier, left_shift);
      sum_of_exps +=
          fp::RescaleFixedPoint(fp::ExpOnNegativeValuesQ5(scaled), 0, kAccumulationIntegerBits);
    }
  }
  int num_bits_over_unit;
  const int32_t shifted_scale =
      fp::GetReciprocal(sum_of_exps, kAccumulationIntegerBits, &num_bits_over_unit);
  const int exponent = num_bits_over_unit + 31 - 8;
  out->resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const int32_t diff = in[i] - max_in;
    if (diff >= diff_min) {
      const int32_t scaled =
          fp::MultiplyByQuantizedMultiplierGreaterThanOne(diff, multiplier, left_shift);
      const int32_t e = fp::ExpOnNegativeValuesQ5(scaled);
      const int32_t unsat = fp::RoundingDivideByPOT(
          fp::SaturatingRoundingDoublingHighMul(shifted_scale, e), exponent);
      (*out)[i] = std::clamp<int32_t>(unsat - 128, -128, 127);
    } else {
      (*out)[i] = -128;
    }
  }
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
