#include "common/export/inference_ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/export/fixed_point.h"

namespace nanonas {
namespace inference_ops {
namespace fp = fixed_point;

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

namespace {

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

}  // namespace

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

}  // namespace inference_ops
}  // namespace nanonas
