// Network parameters (network.h): Keras initialisation, weights in and out of the arenas, and the
// reorders of convolution kernels between the plain and the master layouts.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "worker/engine/network.h"
#include "worker/engine/network_internal.h"
#include "worker/engine/rng.h"

namespace nanonas::engine {

using dnnl::memory;

namespace {
constexpr uint64_t kInitStream = 1, kDropoutStream = 2;
}  // namespace

const Network::Op& Network::ConvOp(int conv) const {
  const Op* op = nullptr;
  for (const Op& o : ops_) {
    if (o.kind == OpKind::kConv && o.index == conv) op = &o;
  }
  return *op;
}

void Network::ReorderConvWeights(int conv, const float* from, float* to, bool to_master) const {
  const Op& op = ConvOp(conv);
  const memory::desc plain({op.cout, op.cin, 3, 3}, memory::data_type::f32,
                           memory::format_tag::ohwi);
  const memory::desc& master = conv_master_md_[conv];
  memory src(to_master ? plain : master, engine_, const_cast<float*>(from));
  memory dst(to_master ? master : plain, engine_, to);
  dnnl::stream s(engine_);
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
}

void Network::PlainToMaster(int conv, const float* ohwi, float* arena) const {
  ReorderConvWeights(conv, ohwi, arena, /*to_master=*/true);
}

void Network::MasterToPlain(int conv, const float* arena, float* ohwi) const {
  ReorderConvWeights(conv, arena, ohwi, /*to_master=*/false);
}

void Network::InitializeKeras(uint64_t seed) {
  Rng rng(DeriveSeed(seed, kInitStream));
  std::fill(params_.get(), params_.get() + arena_size_, 0.f);
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      const float limit = std::sqrt(6.0f / (9.0f * op.cin + 9.0f * op.cout));
      std::vector<float> k(static_cast<size_t>(op.cout) * 9 * op.cin);
      for (float& v : k) v = rng.Uniform(-limit, limit);
      PlainToMaster(op.index, k.data(), params_.get() + conv_w_[op.index].offset);
    } else if (op.kind == OpKind::kBatchNorm) {
      std::fill_n(params_.get() + bn_gamma_[op.index].offset, op.cin, 1.f);
      std::fill(bn_moving_mean_[op.index].begin(), bn_moving_mean_[op.index].end(), 0.f);
      std::fill(bn_moving_var_[op.index].begin(), bn_moving_var_[op.index].end(), 1.f);
    } else if (op.kind == OpKind::kDense) {
      const float limit = std::sqrt(6.0f / static_cast<float>(op.cin + op.cout));
      float* w = params_.get() + dense_w_.offset;
      for (int64_t i = 0; i < dense_w_.count; ++i) w[i] = rng.Uniform(-limit, limit);
    }
  }
  if (training_) {
    std::fill(adam_m_.get(), adam_m_.get() + arena_size_, 0.f);
    std::fill(adam_v_.get(), adam_v_.get() + arena_size_, 0.f);
    std::fill(param_grads_.get(), param_grads_.get() + arena_size_, 0.f);
  }
  adam_t_ = 0;
  dropout_state_ = DeriveSeed(seed, kDropoutStream);
}

absl::Status Network::CheckWeights(const ModelWeights& w) const {
  const size_t n_conv = conv_w_.size(), n_bn = bn_gamma_.size();
  if (w.convs.size() != n_conv || w.batch_norms.size() != n_bn) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weights have ", w.convs.size(), " convolutions and ", w.batch_norms.size(),
        " batch norms; ", DescribeArchitecture(arch_), " needs ", n_conv, " and ", n_bn));
  }
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      const ConvWeights& c = w.convs[op.index];
      if (c.in_channels != op.cin || c.out_channels != op.cout ||
          c.kernel.size() != static_cast<size_t>(op.cout) * 9 * op.cin ||
          c.bias.size() != static_cast<size_t>(op.cout)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "conv ", op.index, " weights do not match: expected ", op.cin, "->", op.cout,
            " channels with kernel (", op.cout, ",3,3,", op.cin, ") and bias (", op.cout, ")"));
      }
    } else if (op.kind == OpKind::kBatchNorm) {
      const BatchNormWeights& b = w.batch_norms[op.index];
      const size_t c = op.cin;
      if (b.gamma.size() != c || b.beta.size() != c || b.moving_mean.size() != c ||
          b.moving_variance.size() != c) {
        return absl::InvalidArgumentError(
            absl::StrCat("batch norm ", op.index, " weights need ", c, " values per statistic"));
      }
    } else if (op.kind == OpKind::kDense) {
      if (w.dense.in_features != op.cin || w.dense.out_features != op.cout ||
          w.dense.kernel.size() != static_cast<size_t>(op.cin) * op.cout ||
          w.dense.bias.size() != static_cast<size_t>(op.cout)) {
        return absl::InvalidArgumentError(absl::StrCat("dense weights must be (", op.cout, ", ",
                                                       op.cin, ") with bias (", op.cout, ")"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status Network::SetWeights(const ModelWeights& w) {
  NANONAS_RETURN_IF_ERROR(CheckWeights(w));
  try {
    for (const Op& op : ops_) {
      if (op.kind == OpKind::kConv) {
        const ConvWeights& c = w.convs[op.index];
        PlainToMaster(op.index, c.kernel.data(), params_.get() + conv_w_[op.index].offset);
        std::copy(c.bias.begin(), c.bias.end(), params_.get() + conv_b_[op.index].offset);
      } else if (op.kind == OpKind::kBatchNorm) {
        const BatchNormWeights& b = w.batch_norms[op.index];
        std::copy(b.gamma.begin(), b.gamma.end(), params_.get() + bn_gamma_[op.index].offset);
        std::copy(b.beta.begin(), b.beta.end(), params_.get() + bn_beta_[op.index].offset);
        bn_moving_mean_[op.index] = b.moving_mean;
        bn_moving_var_[op.index] = b.moving_variance;
      }
    }
  } catch (const dnnl::error& e) {
    return NetworkDnnlError("weights reorder", e);
  }
  std::copy(w.dense.kernel.begin(), w.dense.kernel.end(), params_.get() + dense_w_.offset);
  std::copy(w.dense.bias.begin(), w.dense.bias.end(), params_.get() + dense_b_.offset);
  return absl::OkStatus();
}

ModelWeights Network::ParamsAsWeights(const float* p) const {
  // p: params_ or param_grads_, both laid out by the same offsets.
  ModelWeights w;
  w.convs.resize(conv_w_.size());
  w.batch_norms.resize(bn_gamma_.size());
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      ConvWeights& c = w.convs[op.index];
      c.in_channels = op.cin;
      c.out_channels = op.cout;
      c.kernel.resize(static_cast<size_t>(op.cout) * 9 * op.cin);
      MasterToPlain(op.index, p + conv_w_[op.index].offset, c.kernel.data());
      c.bias.assign(p + conv_b_[op.index].offset, p + conv_b_[op.index].offset + op.cout);
    } else if (op.kind == OpKind::kBatchNorm) {
      BatchNormWeights& b = w.batch_norms[op.index];
      b.channels = op.cin;
      b.gamma.assign(p + bn_gamma_[op.index].offset, p + bn_gamma_[op.index].offset + op.cin);
      b.beta.assign(p + bn_beta_[op.index].offset, p + bn_beta_[op.index].offset + op.cin);
    } else if (op.kind == OpKind::kDense) {
      w.dense.in_features = op.cin;
      w.dense.out_features = op.cout;
      w.dense.kernel.assign(p + dense_w_.offset, p + dense_w_.offset + dense_w_.count);
      w.dense.bias.assign(p + dense_b_.offset, p + dense_b_.offset + dense_b_.count);
    }
  }
  return w;
}

ModelWeights Network::GetWeights() const {
  ModelWeights w = ParamsAsWeights(params_.get());
  for (const Op& op : ops_) {
    if (op.kind != OpKind::kBatchNorm) continue;
    BatchNormWeights& b = w.batch_norms[op.index];
    b.moving_mean = bn_moving_mean_[op.index];
    b.moving_variance = bn_moving_var_[op.index];
    b.epsilon = kBatchNormEpsilon;
  }
  return w;
}

ModelWeights Network::GetGradients() const {
  if (!training_) {
    ModelWeights w;
    w.convs.resize(conv_w_.size());
    w.batch_norms.resize(bn_gamma_.size());
    return w;
  }
  return ParamsAsWeights(param_grads_.get());
}

}  // namespace nanonas::engine
