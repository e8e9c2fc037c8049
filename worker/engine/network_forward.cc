// The forward pass of a Network (network.h): input loading, the operations per batch part, and
// the loss.
#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/engine/network.h"
#include "worker/engine/network_internal.h"

namespace nanonas::engine {

void Network::LoadImages(const Dataset& data, const int64_t* indices, int n) {
  GatherImages(data.pixels(), data.image_bytes(), indices, n, input_scale_, acts_[0].get());
}

absl::Status Network::Forward(int n, bool training) {
  Plan* plan = FindPlan(n);
  if (plan == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("batch size ", n, " was not prepared"));
  }
  if (training && !training_) {
    return absl::FailedPreconditionError("training forward pass on an inference network");
  }
  return RunTeam(*plan, "forward pass", [&](const Team& t) { ForwardOps(t, plan, n, training); });
}

void Network::ForwardOps(const Team& t, Plan* plan, int n, bool training) {
  float* p = params_.get();
  const std::vector<int>& begin = plan->part_begin;
  for (size_t i = 0; i < ops_.size(); ++i) {
    const Op& op = ops_[i];
    const OpTensors ts = TensorsOf(static_cast<int>(i));
    const float* x = ts.x;
    float* y = ts.y;
    const int64_t in = ts.in, out = ts.out;
    switch (op.kind) {
      case OpKind::kBatchNorm:
        ForwardBatchNorm(t, *plan, static_cast<int>(i), n, training);
        break;
      case OpKind::kConv:
        t.Each([&](int q) {
          try {
            plan->convs[op.index][q].Forward(part_streams_[q]);
            part_streams_[q].wait();
          } catch (const dnnl::error& e) {
            RecordError(e);
          }
        });
        break;
      case OpKind::kMaxPool:
        t.Each([&](int q) {
          const int m = plan->part_size(q);
          if (training) {
            MaxPoolForward(x + begin[q] * in, m, op.h, op.w, op.cin, y + begin[q] * out,
                           pool_ws_[i].data() + begin[q] * out);
          } else {
            MaxPoolForwardInference(x + begin[q] * in, m, op.h, op.w, op.cin, y + begin[q] * out);
          }
        });
        break;
      case OpKind::kGlobalAvgPool:
        t.Each([&](int q) {
          GlobalAvgPoolForward(x + begin[q] * in, plan->part_size(q), op.h * op.w, op.cin,
                               y + begin[q] * out);
        });
        break;
      case OpKind::kDropout:
        if (training) {
          // One random stream over the whole batch, as with one thread.
          t.One([&] {
            DropoutForward(x, static_cast<int64_t>(n) * op.cin, kDropoutRate, &dropout_state_,
                           dropout_mask_[i].data(), y);
          });
        } else {
          t.Each([&](int q) {
            std::memcpy(y + begin[q] * out, x + begin[q] * in,
                        sizeof(float) * plan->part_size(q) * op.cin);
          });
        }
        break;
      case OpKind::kDense:
        t.Each([&](int q) {
          DenseForward(x + begin[q] * in, plan->part_size(q), op.cin, op.cout, p + dense_w_.offset,
                       p + dense_b_.offset, y + begin[q] * out);
        });
        break;
    }
  }
}

void Network::ForwardBatchNorm(const Team& t, const Plan& plan, int i, int n, bool training) {
  const Op& op = ops_[i];
  const float* p = params_.get();
  const std::vector<int>& begin = plan.part_begin;
  const OpTensors ts = TensorsOf(i);
  const float* x = ts.x;
  float* y = ts.y;
  const int64_t in = ts.in, out = ts.out;
  const int b = op.index;
  BatchNormKernel& k = bn_kernels_[b];
  const int64_t hw = static_cast<int64_t>(op.h) * op.w;
  if (training) {
    t.Each([&](int q) { k.ForwardStats(x + begin[q] * in, plan.part_size(q) * hw, q); });
    t.One([&] {
      k.ForwardFinish(plan.parts(), n * hw, p + bn_gamma_[b].offset, p + bn_beta_[b].offset,
                      kBatchNormEpsilon, kBatchNormMomentum, bn_mean_[b].data(),
                      bn_invstd_[b].data(), bn_moving_mean_[b].data(), bn_moving_var_[b].data());
    });
  } else {
    t.One([&] {
      k.InferenceCoefficients(p + bn_gamma_[b].offset, p + bn_beta_[b].offset,
                              bn_moving_mean_[b].data(), bn_moving_var_[b].data(),
                              kBatchNormEpsilon);
    });
  }
  t.Each([&](int q) {
    k.Apply(x + begin[q] * in, plan.part_size(q) * hw, op.relu, y + begin[q] * out);
  });
}

double Network::Loss(int n, const int32_t* labels, int* correct) {
  const int k = ops_.back().cout;
  float* dlogits = training_ ? dlogits_.get() : nullptr;
  return SoftmaxCrossEntropy(acts_.back().get(), labels, n, k, nullptr, dlogits, correct);
}

}  // namespace nanonas::engine
