// Network construction (network.h): the operations, the plans (convolution primitives per batch
// size and part), the buffers and the convolutions bound to them.
#include "worker/engine/network.h"

#include <omp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "worker/engine/network_internal.h"
#include "worker/engine/omp_threads.h"

namespace nanonas::engine {

Network::~Network() = default;

absl::StatusOr<std::unique_ptr<Network>> Network::Create(const Architecture& arch,
                                                         std::vector<int> batch_sizes,
                                                         bool training, bool first_layer_shortcut) {
  std::unique_ptr<Network> net(new Network());
  NANONAS_RETURN_IF_ERROR(net->Build(arch, std::move(batch_sizes), training, first_layer_shortcut));
  return net;
}

int64_t Network::ActSize(int i) const {
  if (i < static_cast<int>(ops_.size())) {
    const Op& op = ops_[i];
    return static_cast<int64_t>(op.h) * op.w * op.cin;
  }
  const Op& op = ops_.back();
  return static_cast<int64_t>(op.oh) * op.ow * op.cout;
}

Network::OpTensors Network::TensorsOf(int i) const {
  OpTensors t;
  t.x = acts_[i].get();
  t.y = acts_[i + 1].get();
  t.in = ActSize(i);
  t.out = ActSize(i + 1);
  t.dy = grads_[(i + 1) % 2].get();
  t.dx = i > 0 ? grads_[i % 2].get() : nullptr;
  return t;
}

void Network::RecordError(const dnnl::error& e) {
#pragma omp critical(nanonas_network_team_error)
  {
    if (team_error_.empty()) team_error_ = e.what();
  }
}

Network::Plan* Network::FindPlan(int n) {
  for (Plan& p : plans_) {
    if (p.n == n) return &p;
  }
  return nullptr;
}

absl::Status Network::Build(const Architecture& arch, std::vector<int> batch_sizes, bool training,
                            bool first_layer_shortcut) {
  arch_ = arch;
  training_ = training;
  std::sort(batch_sizes.begin(), batch_sizes.end());
  batch_sizes.erase(std::unique(batch_sizes.begin(), batch_sizes.end()), batch_sizes.end());
  if (batch_sizes.empty() || batch_sizes.front() < 1) {
    return absl::InvalidArgumentError("network batch sizes must be >= 1 and at least one given");
  }
  max_batch_ = batch_sizes.back();
  input_scale_ = arch.spec.variant == Variant::k2023 ? 1.0f / 255.0f : 1.0f;

  int n_conv = 0, n_bn = 0;
  NANONAS_RETURN_IF_ERROR(BuildOps(arch, &n_conv, &n_bn));
  try {
    engine_ = dnnl::engine(dnnl::engine::kind::cpu, 0);
    stream_ = dnnl::stream(engine_);
  } catch (const dnnl::error& e) {
    return NetworkDnnlError("engine", e);
  }
  first_layer_shortcut_ = first_layer_shortcut && training && arch.spec.variant == Variant::k2023 &&
                          ops_.size() > 1 && ops_[0].kind == OpKind::kBatchNorm &&
                          ops_[1].kind == OpKind::kConv && !ops_[0].relu;
  size_t scratch_bytes = 0;
  int max_parts = 1;
  NANONAS_RETURN_IF_ERROR(BuildPlans(batch_sizes, n_conv, &scratch_bytes, &max_parts));
  LayOutParameters(n_conv, n_bn, max_parts);
  AllocateBuffers(scratch_bytes, max_parts);
  NANONAS_RETURN_IF_ERROR(BindConvolutions(max_parts));
  if (first_layer_shortcut_) NANONAS_RETURN_IF_ERROR(SetUpFirstLayerShortcut());
  InitializeKeras(1);
  return absl::OkStatus();
}

absl::Status Network::BuildOps(const Architecture& arch, int* n_conv, int* n_bn) {
  // Operations from the layer list: Rescale goes into LoadImages, Softmax into Loss, a ReLU after
  // a batch norm (2024) is fused into it.
  for (const Layer& l : arch.layers) {
    Op op{OpKind::kConv, l.in_h, l.in_w, l.in_c, l.out_h, l.out_w, l.out_c};
    switch (l.kind) {
      case LayerKind::kRescale:
      case LayerKind::kSoftmax:
        continue;
      case LayerKind::kReLU:
        if (ops_.empty() || ops_.back().kind != OpKind::kBatchNorm) {
          return absl::InvalidArgumentError("a standalone ReLU must follow a batch norm");
        }
        ops_.back().relu = true;
        continue;
      case LayerKind::kBatchNorm:
        op.kind = OpKind::kBatchNorm;
        op.index = (*n_bn)++;
        break;
      case LayerKind::kConv3x3:
        op.kind = OpKind::kConv;
        op.relu = l.fused_relu;
        op.index = (*n_conv)++;
        break;
      case LayerKind::kMaxPool2x2:
        op.kind = OpKind::kMaxPool;
        break;
      case LayerKind::kGlobalAvgPool:
        op.kind = OpKind::kGlobalAvgPool;
        break;
      case LayerKind::kDropout:
        op.kind = OpKind::kDropout;
        break;
      case LayerKind::kDense:
        op.kind = OpKind::kDense;
        break;
    }
    ops_.push_back(op);
  }
  if (ops_.empty() || ops_.back().kind != OpKind::kDense || *n_conv != arch.spec.c + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture ", DescribeArchitecture(arch), " is not a NanoNAS network"));
  }
  return absl::OkStatus();
}

absl::Status Network::BuildPlans(const std::vector<int>& batch_sizes, int n_conv,
                                 size_t* scratch_bytes, int* max_parts) {
  // Convolution primitives per batch size and part; the first one fixes the master weights
  // layouts. Parts run one per thread, so their primitives are made for one thread.
  const int threads = std::max(1, omp_get_max_threads());
  conv_master_md_.resize(n_conv);
  for (int n : batch_sizes) {
    Plan plan;
    plan.n = n;
    const int parts = std::min(threads, n);
    *max_parts = std::max(*max_parts, parts);
    for (int p = 0; p <= parts; ++p) {
      plan.part_begin.push_back(static_cast<int>(static_cast<int64_t>(n) * p / parts));
    }
    ScopedOmpThreads primitive_threads(parts > 1 ? 1 : threads);
    plan.convs.resize(n_conv);
    for (size_t i = 0; i < ops_.size(); ++i) {
      const Op& op = ops_[i];
      if (op.kind != OpKind::kConv) continue;
      const bool need_dx = training_ && i > 0 && !(first_layer_shortcut_ && i == 1);
      plan.convs[op.index].resize(parts);
      for (int p = 0; p < parts; ++p) {
        ConvLayer& conv = plan.convs[op.index][p];
        ConvShape s{plan.part_size(p), op.h, op.w, op.cin, op.cout, op.relu, training_, need_dx};
        const bool first = plans_.empty() && p == 0;
        NANONAS_RETURN_IF_ERROR(
            conv.Init(engine_, s, first ? nullptr : &conv_master_md_[op.index]));
        if (first) conv_master_md_[op.index] = conv.master_weights_desc();
        *scratch_bytes = std::max(*scratch_bytes, conv.scratchpad_bytes());
      }
    }
    plans_.push_back(std::move(plan));
  }
  try {
    for (int p = 0; p < *max_parts; ++p) part_streams_.emplace_back(engine_);
  } catch (const dnnl::error& e) {
    return NetworkDnnlError("streams", e);
  }
  return absl::OkStatus();
}

void Network::LayOutParameters(int n_conv, int n_bn, int max_parts) {
  // Parameter arena layout (64-byte aligned tensors).
  auto add = [&](int64_t count) {
    Tensor t{arena_size_, count};
    arena_size_ += (count + 15) / 16 * 16;
    trainable_count_ += count;
    return t;
  };
  conv_w_.resize(n_conv);
  conv_b_.resize(n_conv);
  bn_gamma_.resize(n_bn);
  bn_beta_.resize(n_bn);
  for (const Op& op : ops_) {
    if (op.kind == OpKind::kConv) {
      conv_w_[op.index] = add(conv_master_md_[op.index].get_size() / sizeof(float));
      conv_b_[op.index] = add(op.cout);
    } else if (op.kind == OpKind::kBatchNorm) {
      bn_gamma_[op.index] = add(op.cin);
      bn_beta_[op.index] = add(op.cin);
      bn_kernels_.emplace_back(op.cin, static_cast<int>(part_streams_.size()));
      bn_mean_.emplace_back(op.cin);
      bn_invstd_.emplace_back(op.cin);
      bn_moving_mean_.emplace_back(op.cin, 0.f);
      bn_moving_var_.emplace_back(op.cin, 1.f);
    } else if (op.kind == OpKind::kDense) {
      dense_w_ = add(static_cast<int64_t>(op.cout) * op.cin);
      dense_b_ = add(op.cout);
    }
  }
  const int arenas = training_ ? 4 : 1;
  params_ = AllocateAligned(arena_size_);
  if (training_) {
    param_grads_ = AllocateAligned(arena_size_);
    adam_m_ = AllocateAligned(arena_size_);
    adam_v_ = AllocateAligned(arena_size_);
  }
  buffer_bytes_ = arenas * arena_size_ * static_cast<int64_t>(sizeof(float));
  if (training_) {
    for (int p = 1; p < max_parts; ++p) part_grads_.push_back(AllocateAligned(arena_size_));
    buffer_bytes_ += (max_parts - 1) * arena_size_ * static_cast<int64_t>(sizeof(float));
  }
}

void Network::AllocateBuffers(size_t scratch_bytes, int max_parts) {
  // Activations, gradients and per-op state, sized for the largest batch.
  for (size_t i = 0; i <= ops_.size(); ++i) {
    acts_.push_back(AllocateAligned(ActSize(i) * max_batch_));
    buffer_bytes_ += ActSize(i) * max_batch_ * static_cast<int64_t>(sizeof(float));
    if (i > 0) max_act_ = std::max(max_act_, ActSize(i));
  }
  if (training_) {
    for (AlignedBuffer& g : grads_) g = AllocateAligned(max_act_ * max_batch_);
    dlogits_ = AllocateAligned(ActSize(static_cast<int>(ops_.size())) * max_batch_);
    buffer_bytes_ += (2 * max_act_ + ActSize(static_cast<int>(ops_.size()))) * max_batch_ *
                     static_cast<int64_t>(sizeof(float));
  }
  pool_ws_.resize(ops_.size());
  dropout_mask_.resize(ops_.size());
  for (size_t i = 0; i < ops_.size(); ++i) {
    if (!training_) break;
    if (ops_[i].kind == OpKind::kMaxPool) pool_ws_[i].resize(ActSize(i + 1) * max_batch_);
    if (ops_[i].kind == OpKind::kDropout) dropout_mask_[i].resize(ActSize(i + 1) * max_batch_);
    buffer_bytes_ += ActSize(i + 1) * max_batch_ * 5;
  }
  scratch_floats_ = (scratch_bytes / sizeof(float) + 16 + 15) / 16 * 16;
  scratchpad_ = AllocateAligned(scratch_floats_ * max_parts);
  buffer_bytes_ += static_cast<int64_t>(scratch_floats_ * max_parts * sizeof(float));
}

absl::Status Network::BindConvolutions(int max_parts) {
  // Every convolution of every plan and part to its slice of the buffers.
  for (Plan& plan : plans_) {
    for (size_t i = 0; i < ops_.size(); ++i) {
      const Op& op = ops_[i];
      if (op.kind != OpKind::kConv) continue;
      for (int p = 0; p < plan.parts(); ++p) {
        const int64_t in_off = plan.part_begin[p] * ActSize(i);
        const int64_t out_off = plan.part_begin[p] * ActSize(i + 1);
        float* grads = !training_ ? nullptr
                       : p == 0   ? param_grads_.get()
                                  : part_grads_[p - 1].get();
        float* gw = training_ ? grads + conv_w_[op.index].offset : nullptr;
        float* gb = training_ ? grads + conv_b_[op.index].offset : nullptr;
        const int64_t grad_off = plan.part_begin[p] * max_act_;
        float* dy = training_ ? grads_[(i + 1) % 2].get() + grad_off : nullptr;
        float* dx = training_ && i > 0 ? grads_[i % 2].get() + grad_off : nullptr;
        float* grad_src = nullptr;
        if (first_layer_shortcut_ && i == 1) {
          if (dwx_master_ == nullptr) {
            dwx_master_ = AllocateAligned(conv_w_[op.index].count);
            for (int q = 1; q < max_parts; ++q) {
              part_dwx_.push_back(AllocateAligned(conv_w_[op.index].count));
            }
          }
          gw = p == 0 ? dwx_master_.get() : part_dwx_[p - 1].get();
          dx = nullptr;
          grad_src = acts_[0].get() + in_off;
        }
        NANONAS_RETURN_IF_ERROR(plan.convs[op.index][p].Bind(
            acts_[i].get() + in_off, acts_[i + 1].get() + out_off,
            params_.get() + conv_w_[op.index].offset, params_.get() + conv_b_[op.index].offset, dy,
            dx, gw, gb, scratchpad_.get() + p * scratch_floats_, grad_src));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace nanonas::engine
