// The backward pass of a Network (network.h), per batch part, and the Adam step.
#include <algorithm>
#include <cmath>

#include "worker/engine/network.h"
#include "worker/engine/network_internal.h"

namespace nanonas::engine {

bool Network::producer_relu(size_t i) const { return i > 0 && ops_[i - 1].relu; }

bool Network::consumer_masks_relu(size_t i) const {
  return i + 1 < ops_.size() &&
         (ops_[i + 1].kind == OpKind::kMaxPool || ops_[i + 1].kind == OpKind::kGlobalAvgPool);
}

absl::Status Network::Backward(int n) {
  Plan* plan = FindPlan(n);
  if (plan == nullptr || !training_) {
    return absl::FailedPreconditionError(
        "backward pass needs a training network and a prepared batch size");
  }
  return RunTeam(*plan, "backward pass", [&](const Team& t) { BackwardOps(t, plan, n); });
}

void Network::BackwardOps(const Team& t, Plan* plan, int n) {
  const std::vector<int>& begin = plan->part_begin;
  // Gradients live in the two ping-pong buffers with part q at begin[q] * max_act_, whatever the
  // operation: a thread that runs ahead into the next operation never writes over a part that
  // another thread still reads. (Activations, one buffer per operation, are batch-contiguous.)
  auto part_grad = [&](float* buffer, int q) { return PartGrad(buffer, *plan, q); };
  for (int i = static_cast<int>(ops_.size()) - 1; i >= 0; --i) {
    if (first_layer_shortcut_ && i == 0) break;  // done by FirstLayerGradients
    const Op& op = ops_[i];
    const OpTensors ts = TensorsOf(i);
    const float* x = ts.x;
    const float* y = ts.y;
    float* dy = ts.dy;
    float* dx = ts.dx;
    const int64_t in = ts.in, out = ts.out;
    switch (op.kind) {
      case OpKind::kBatchNorm:
        BackwardBatchNorm(t, *plan, i, n);
        break;
      case OpKind::kConv:
        BackwardConv(t, plan, i);
        break;
      case OpKind::kMaxPool:
        if (dx != nullptr) {
          t.Each([&](int q) {
            MaxPoolBackward(part_grad(dy, q), pool_ws_[i].data() + begin[q] * out,
                            plan->part_size(q), op.h, op.w, op.cin, part_grad(dx, q),
                            producer_relu(i) ? y + begin[q] * out : nullptr);
          });
        }
        break;
      case OpKind::kGlobalAvgPool:
        if (dx != nullptr) {
          t.Each([&](int q) {
            GlobalAvgPoolBackward(part_grad(dy, q), plan->part_size(q), op.h * op.w, op.cin,
                                  part_grad(dx, q), producer_relu(i) ? x + begin[q] * in : nullptr);
          });
        }
        break;
      case OpKind::kDropout:
        if (dx != nullptr) {
          t.Each([&](int q) {
            DropoutBackward(part_grad(dy, q), dropout_mask_[i].data() + begin[q] * out,
                            plan->part_size(q) * op.cin, part_grad(dx, q));
          });
        }
        break;
      case OpKind::kDense:
        BackwardDense(t, *plan, i, n);
        break;
    }
  }
  if (plan->parts() > 1) SumPartGradients(t, *plan);
}

void Network::BackwardBatchNorm(const Team& t, const Plan& plan, int i, int n) {
  const Op& op = ops_[i];
  const float* p = params_.get();
  float* g = param_grads_.get();
  const std::vector<int>& begin = plan.part_begin;
  const OpTensors ts = TensorsOf(i);
  const int b = op.index;
  BatchNormKernel& k = bn_kernels_[b];
  const int64_t hw = static_cast<int64_t>(op.h) * op.w;
  t.Each([&](int q) {
    k.BackwardStats(ts.x + begin[q] * ts.in, ts.y + begin[q] * ts.out, PartGrad(ts.dy, plan, q),
                    plan.part_size(q) * hw, op.relu, q);
  });
  t.One([&] {
    k.BackwardFinish(plan.parts(), n * hw, p + bn_gamma_[b].offset, bn_mean_[b].data(),
                     bn_invstd_[b].data(), g + bn_gamma_[b].offset, g + bn_beta_[b].offset);
  });
  if (ts.dx != nullptr) {
    t.Each([&](int q) {
      k.BackwardApply(ts.x + begin[q] * ts.in, ts.y + begin[q] * ts.out, PartGrad(ts.dy, plan, q),
                      plan.part_size(q) * hw, op.relu, PartGrad(ts.dx, plan, q));
    });
  }
}

void Network::BackwardConv(const Team& t, Plan* plan, int i) {
  const Op& op = ops_[i];
  const std::vector<int>& begin = plan->part_begin;
  const OpTensors ts = TensorsOf(i);
  // A following max pool or global average pool applied the ReLU mask already.
  const bool mask = op.relu && !consumer_masks_relu(i);
  const bool shortcut = first_layer_shortcut_ && i == 1;
  t.Each([&](int q) {
    const int m = plan->part_size(q);
    if (mask) ReluBackwardInPlace(ts.y + begin[q] * ts.out, m * ts.out, PartGrad(ts.dy, *plan, q));
    try {
      ConvLayer& conv = plan->convs[op.index][q];
      conv.BackwardWeights(part_streams_[q]);
      if (!shortcut && ts.dx != nullptr) conv.BackwardData(part_streams_[q]);
      part_streams_[q].wait();
    } catch (const dnnl::error& e) {
      RecordError(e);
    }
    if (shortcut) FirstLayerSums(q, begin[q], m);
  });
  if (shortcut) {
    t.One([&] {
      try {
        FirstLayerGradients(plan->parts());
      } catch (const dnnl::error& e) {
        RecordError(e);
      }
    });
  }
}

void Network::BackwardDense(const Team& t, const Plan& plan, int i, int n) {
  const Op& op = ops_[i];
  const float* p = params_.get();
  float* g = param_grads_.get();
  const OpTensors ts = TensorsOf(i);
  // dy: the loss gradient (batch-contiguous, its own buffer). The weight gradient sums over the
  // whole batch (a few hundred values): one thread; the input gradient per part.
  const float* dlogits = dlogits_.get();
  t.One([&] {
    DenseBackward(ts.x, dlogits, n, op.cin, op.cout, p + dense_w_.offset, g + dense_w_.offset,
                  g + dense_b_.offset, nullptr);
  });
  if (ts.dx != nullptr) {
    t.Each([&](int q) {
      DenseBackwardInput(dlogits + plan.part_begin[q] * ts.out, plan.part_size(q), op.cin, op.cout,
                         p + dense_w_.offset, PartGrad(ts.dx, plan, q));
    });
  }
}

void Network::SumPartGradients(const Team& t, const Plan& plan) {
  // Each thread sums a slice of the arena.
  float* g = param_grads_.get();
  t.Barrier();
  const int64_t per = ((arena_size_ + t.size - 1) / t.size + 15) / 16 * 16;
  const int64_t lo = std::min(arena_size_, t.thread * per);
  const int64_t hi = std::min(arena_size_, lo + per);
  for (int q = 1; q < plan.parts() && lo < hi; ++q) {
    AccumulateInto(g + lo, part_grads_[q - 1].get() + lo, hi - lo);
  }
}

void Network::AdamStep(float learning_rate) {
  ++adam_t_;
  const double t = static_cast<double>(adam_t_);
  const double lr_t = learning_rate * std::sqrt(1.0 - std::pow(double{kAdamBeta2}, t)) /
                      (1.0 - std::pow(double{kAdamBeta1}, t));
  AdamUpdate(params_.get(), param_grads_.get(), adam_m_.get(), adam_v_.get(), arena_size_,
             static_cast<float>(lr_t), kAdamBeta1, kAdamBeta2, kAdamEpsilon);
}

}  // namespace nanonas::engine
