// The first-layer shortcut of a Network (network.h, 2023 variant, training): the input batch
// norm's gradients from sums of the first convolution's output gradient, without its
// backward-data convolution.
#include <algorithm>

#include "worker/engine/network.h"
#include "worker/engine/network_internal.h"

namespace nanonas::engine {

using dnnl::memory;

absl::Status Network::SetUpFirstLayerShortcut() {
  const Op& cv = ops_[1];
  const size_t count = static_cast<size_t>(cv.cout) * 9 * cv.cin;
  w_plain_.assign(count, 0.f);
  dwx_plain_.assign(count, 0.f);
  dwz_plain_.assign(count, 0.f);
  const size_t row_sums = part_streams_.size() * cv.w * cv.cout;
  col_sums_.assign(row_sums, 0.f);
  first_row_.assign(row_sums, 0.f);
  last_row_.assign(row_sums, 0.f);
  dw1_.assign(9 * static_cast<size_t>(cv.cout), 0.0);
  try {
    const memory::desc plain({cv.cout, cv.cin, 3, 3}, memory::data_type::f32,
                             memory::format_tag::ohwi);
    const memory::desc& master = conv_master_md_[cv.index];
    auto add = [&](const memory::desc& from_md, void* from, const memory::desc& to_md, void* to) {
      memory a(from_md, engine_, from), b(to_md, engine_, to);
      first_layer_reorders_.push_back({dnnl::reorder(a, b), a, b});
    };
    add(master, params_.get() + conv_w_[cv.index].offset, plain, w_plain_.data());
    add(master, dwx_master_.get(), plain, dwx_plain_.data());
    add(plain, dwz_plain_.data(), master, param_grads_.get() + conv_w_[cv.index].offset);
  } catch (const dnnl::error& e) {
    return NetworkDnnlError("first-layer reorders", e);
  }
  return absl::OkStatus();
}

void Network::Reorder::Run(dnnl::stream& s) const {
  const dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from.get()}, {DNNL_ARG_TO, to.get()}};
  dnnl::error::wrap_c_api(dnnl_primitive_execute(prim.get(), s.get(), 2, args),
                          "could not execute a reorder");
}

void Network::FirstLayerSums(int part, int begin, int count) {
  const Op& cv = ops_[1];
  const int h = cv.h, w = cv.w, O = cv.cout;
  // Sums per (column, o) of dy (the conv output's gradient, ReLU mask applied) over the part's
  // images and rows, and over their first and last rows only.
  const int64_t row_len = static_cast<int64_t>(w) * O;
  float* cols = col_sums_.data() + part * row_len;
  float* first = first_row_.data() + part * row_len;
  float* last = last_row_.data() + part * row_len;
  std::fill(cols, cols + row_len, 0.f);
  std::fill(first, first + row_len, 0.f);
  std::fill(last, last + row_len, 0.f);
  const float* part_dy = grads_[0].get() + begin * max_act_;
  for (int b = 0; b < count; ++b) {
    const float* img = part_dy + static_cast<int64_t>(b) * h * row_len;
    for (int i = 0; i < h; ++i) AccumulateInto(cols, img + i * row_len, row_len);
    AccumulateInto(first, img, row_len);
    AccumulateInto(last, img + (h - 1) * row_len, row_len);
  }
}

void Network::FirstLayerGradients(int parts) {
  const Op& cv = ops_[1];
  const int w = cv.w, C = cv.cin, O = cv.cout;
  const int64_t row_len = static_cast<int64_t>(w) * O;
  for (int p = 1; p < parts; ++p) {
    AccumulateInto(col_sums_.data(), col_sums_.data() + p * row_len, row_len);
    AccumulateInto(first_row_.data(), first_row_.data() + p * row_len, row_len);
    AccumulateInto(last_row_.data(), last_row_.data() + p * row_len, row_len);
    AccumulateInto(dwx_master_.get(), part_dwx_[p - 1].get(), conv_w_[cv.index].count);
  }
  first_layer_reorders_[0].Run(stream_);
  first_layer_reorders_[1].Run(stream_);
  stream_.wait();

  // dW_1[o, di, dj] = sum of dy[., i, j, o] over the output positions whose tap (di, dj) reads
  // inside the image: all positions minus the first/last row and column as the tap requires.
  for (int o = 0; o < O; ++o) {
    double total = 0, row_first = 0, row_last = 0;
    for (int j = 0; j < w; ++j) {
      total += col_sums_[static_cast<size_t>(j) * O + o];
      row_first += first_row_[static_cast<size_t>(j) * O + o];
      row_last += last_row_[static_cast<size_t>(j) * O + o];
    }
    const size_t first_col = o, last_col = static_cast<size_t>(w - 1) * O + o;
    for (int di = 0; di < 3; ++di) {
      for (int dj = 0; dj < 3; ++dj) {
        double v = total;
        if (di == 0) v -= row_first;
        if (di == 2) v -= row_last;
        if (dj == 0) v -= col_sums_[first_col];
        if (dj == 2) v -= col_sums_[last_col];
        // Corners were subtracted twice.
        if (di != 1 && dj != 1) {
          const std::vector<float>& r = di == 0 ? first_row_ : last_row_;
          v += r[dj == 0 ? first_col : last_col];
        }
        dw1_[static_cast<size_t>(o) * 9 + di * 3 + dj] = v;
      }
    }
  }

  const Op& bn = ops_[0];
  const float* gamma = params_.get() + bn_gamma_[bn.index].offset;
  const float* beta = params_.get() + bn_beta_[bn.index].offset;
  const float* mean = bn_mean_[bn.index].data();
  const float* invstd = bn_invstd_[bn.index].data();
  float* dgamma = param_grads_.get() + bn_gamma_[bn.index].offset;
  float* dbeta = param_grads_.get() + bn_beta_[bn.index].offset;
  for (int c = 0; c < C; ++c) {
    const double a = static_cast<double>(gamma[c]) * invstd[c];
    const double b = beta[c] - mean[c] * a;
    double dg = 0, db = 0;
    for (int o = 0; o < O; ++o) {
      for (int t = 0; t < 9; ++t) {
        const size_t idx = (static_cast<size_t>(o) * 9 + t) * C + c;
        const double d1 = dw1_[static_cast<size_t>(o) * 9 + t];
        dwz_plain_[idx] = static_cast<float>(a * dwx_plain_[idx] + b * d1);
        dg += w_plain_[idx] * (dwx_plain_[idx] - mean[c] * d1);
        db += w_plain_[idx] * d1;
      }
    }
    dgamma[c] = static_cast<float>(dg * invstd[c]);
    dbeta[c] = static_cast<float>(db);
  }
  first_layer_reorders_[2].Run(stream_);
  stream_.wait();
}

}  // namespace nanonas::engine
