#include "worker/engine/reference.h"

#include <algorithm>
#include <cmath>

namespace nanonas::engine::reference {

Vec Conv3x3(const Vec& x, int n, int h, int w, int cin, const Vec& kernel, const Vec& bias,
            int cout, bool relu) {
  Vec y(static_cast<size_t>(n) * h * w * cout);
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < w; ++j)
        for (int o = 0; o < cout; ++o) {
          double s = bias[o];
          for (int di = 0; di < 3; ++di)
            for (int dj = 0; dj < 3; ++dj) {
              const int ii = i + di - 1, jj = j + dj - 1;
              if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
              for (int c = 0; c < cin; ++c) {
                s += kernel[((static_cast<size_t>(o) * 3 + di) * 3 + dj) * cin + c] *
                     x[((static_cast<size_t>(b) * h + ii) * w + jj) * cin + c];
              }
            }
          y[((static_cast<size_t>(b) * h + i) * w + j) * cout + o] = relu ? std::max(s, 0.0) : s;
        }
  return y;
}

Vec BatchNormTraining(const Vec& x, int64_t rows, int c, const Vec& gamma, const Vec& beta,
                      double epsilon, bool relu) {
  Vec mean(c, 0.0), var(c, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int ch = 0; ch < c; ++ch) mean[ch] += x[r * c + ch] / rows;
  for (int64_t r = 0; r < rows; ++r)
    for (int ch = 0; ch < c; ++ch) {
      const double d = x[r * c + ch] - mean[ch];
      var[ch] += d * d / rows;
    }
  return BatchNormInference(x, rows, c, gamma, beta, mean, var, epsilon, relu);
}

Vec BatchNormInference(const Vec& x, int64_t rows, int c, const Vec& gamma, const Vec& beta,
                       const Vec& mean, const Vec& variance, double epsilon, bool relu) {
  Vec y(x.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int ch = 0; ch < c; ++ch) {
      const double v =
          gamma[ch] * (x[r * c + ch] - mean[ch]) / std::sqrt(variance[ch] + epsilon) + beta[ch];
      y[r * c + ch] = relu ? std::max(v, 0.0) : v;
    }
  return y;
}

Vec MaxPool2x2(const Vec& x, int n, int h, int w, int c) {
  const int oh = h / 2, ow = w / 2;
  Vec y(static_cast<size_t>(n) * oh * ow * c);
  for (int b = 0; b < n; ++b)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j)
        for (int ch = 0; ch < c; ++ch) {
          double m = -INFINITY;
          for (int di = 0; di < 2; ++di)
            for (int dj = 0; dj < 2; ++dj)
              m = std::max(
                  m, x[((static_cast<size_t>(b) * h + 2 * i + di) * w + 2 * j + dj) * c + ch]);
          y[((static_cast<size_t>(b) * oh + i) * ow + j) * c + ch] = m;
        }
  return y;
}

Vec GlobalAvgPool(const Vec& x, int n, int h, int w, int c) {
  Vec y(static_cast<size_t>(n) * c, 0.0);
  for (int b = 0; b < n; ++b)
    for (int p = 0; p < h * w; ++p)
      for (int ch = 0; ch < c; ++ch)
        y[static_cast<size_t>(b) * c + ch] +=
            x[(static_cast<size_t>(b) * h * w + p) * c + ch] / (h * w);
  return y;
}

Vec Dense(const Vec& x, int n, int in, const Vec& kernel, const Vec& bias, int out) {
  Vec y(static_cast<size_t>(n) * out);
  for (int b = 0; b < n; ++b)
    for (int o = 0; o < out; ++o) {
      double s = bias[o];
      for (int i = 0; i < in; ++i) {
        s += kernel[static_cast<size_t>(o) * in + i] * x[static_cast<size_t>(b) * in + i];
      }
      y[static_cast<size_t>(b) * out + o] = s;
    }
  return y;
}

Vec Softmax(const Vec& logits, int n, int k) {
  Vec p(logits.size());
  for (int b = 0; b < n; ++b) {
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < k; ++j) mx = std::max(mx, logits[b * k + j]);
    for (int j = 0; j < k; ++j) sum += std::exp(logits[b * k + j] - mx);
    for (int j = 0; j < k; ++j) p[b * k + j] = std::exp(logits[b * k + j] - mx) / sum;
  }
  return p;
}

double SoftmaxCrossEntropy(const Vec& logits, const std::vector<int32_t>& labels, int n, int k) {
  const Vec p = Softmax(logits, n, k);
  double loss = 0;
  for (int b = 0; b < n; ++b) loss -= std::log(p[b * k + labels[b]]);
  return loss / n;
}

namespace {
Vec ToVec(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }
}  // namespace

Vec InferLogits(const Architecture& arch, const ModelWeights& weights, const Dataset& data,
                const std::vector<int64_t>& indices) {
  const int n = static_cast<int>(indices.size());
  const InputShape& in = arch.spec.input;
  Vec x;
  for (int64_t idx : indices) {
    const uint8_t* img = data.image(idx);
    for (int64_t j = 0; j < data.image_bytes(); ++j) x.push_back(img[j]);
  }
  int h = in.height, w = in.width, c = in.channels, conv = 0, bn = 0;
  for (size_t li = 0; li < arch.layers.size(); ++li) {
    const Layer& l = arch.layers[li];
    switch (l.kind) {
      case LayerKind::kRescale:
        for (double& v : x) v /= 255.0;
        break;
      case LayerKind::kBatchNorm: {
        const BatchNormWeights& b = weights.batch_norms[bn++];
        const bool relu =
            li + 1 < arch.layers.size() && arch.layers[li + 1].kind == LayerKind::kReLU;
        x = BatchNormInference(x, static_cast<int64_t>(n) * h * w, c, ToVec(b.gamma), ToVec(b.beta),
                               ToVec(b.moving_mean), ToVec(b.moving_variance), b.epsilon, relu);
        break;
      }
      case LayerKind::kConv3x3: {
        const ConvWeights& cw = weights.convs[conv++];
        x = Conv3x3(x, n, h, w, c, ToVec(cw.kernel), ToVec(cw.bias), l.out_c, l.fused_relu);
        c = l.out_c;
        break;
      }
      case LayerKind::kReLU:
        for (double& v : x) v = std::max(v, 0.0);
        break;
      case LayerKind::kMaxPool2x2:
        x = MaxPool2x2(x, n, h, w, c);
        h /= 2;
        w /= 2;
        break;
      case LayerKind::kGlobalAvgPool:
        x = GlobalAvgPool(x, n, h, w, c);
        h = w = 1;
        break;
      case LayerKind::kDropout:
        break;
      case LayerKind::kDense:
        x = Dense(x, n, c, ToVec(weights.dense.kernel), ToVec(weights.dense.bias), l.out_c);
        c = l.out_c;
        break;
      case LayerKind::kSoftmax:
        break;  // logits are returned
    }
  }
  return x;
}

}  // namespace nanonas::engine::reference
