#include "worker/engine/conv.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "worker/engine/kernels.h"

namespace nanonas::engine {

using dnnl::algorithm;
using dnnl::memory;
using dnnl::prop_kind;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

void AlignedFree::operator()(float* p) const { ::operator delete(p, std::align_val_t(64)); }

AlignedBuffer AllocateAligned(size_t floats) {
  const size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64 + 64;
  void* p = ::operator new(bytes, std::align_val_t(64));  // throws std::bad_alloc
  std::memset(p, 0, bytes);
  return AlignedBuffer(static_cast<float*>(p));
}

namespace {
absl::Status DnnlError(const char* what, const dnnl::error& e) {
  return absl::InternalError(
      absl::StrCat("oneDNN ", what, ": ", e.what(), " (status ", static_cast<int>(e.status), ")"));
}
}  // namespace

bool WinogradPays(const ConvShape& s) {
  return s.allow_winograd && s.cin % 16 == 0 && s.cout % 16 == 0 && s.h >= 10 && s.w >= 10 &&
         (s.cin >= 32 || s.h * s.w >= 400);
}

absl::Status ConvLayer::Init(const dnnl::engine& engine, const ConvShape& s,
                             const memory::desc* master) {
  shape_ = s;
  engine_ = engine;
  winograd_ = false;
  try {
    const memory::dims src_dims = {s.n, s.cin, s.h, s.w};
    const memory::dims dst_dims = {s.n, s.cout, s.h, s.w};
    const memory::dims wei_dims = {s.cout, s.cin, 3, 3};
    const memory::dims one = {1, 1};
    const memory::desc wei_any(wei_dims, dt::f32, tag::any);
    const memory::desc bias_md({s.cout}, dt::f32, tag::x);

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // The ReLU is applied by a loop after the convolution: oneDNN 2.6 has no training
    // implementation with an eltwise post-op for these shapes.
    auto make = [&](algorithm alg, tag act) {
      const memory::desc src_md(src_dims, dt::f32, act);
      const memory::desc dst_md(dst_dims, dt::f32, act);
      dnnl::convolution_forward::desc fwd_d(prop_kind::forward_training, alg, src_md, wei_any,
                                            bias_md, dst_md, one, one, one);
      fwd_pd_ = dnnl::convolution_forward::primitive_desc(fwd_d, attr, engine);
      if (s.backward_data) {
        dnnl::convolution_backward_data::desc d(alg, src_md, wei_any, dst_md, one, one, one);
        bwd_data_pd_ = dnnl::convolution_backward_data::primitive_desc(d, attr, engine, fwd_pd_);
      }
      if (s.backward) {
        dnnl::convolution_backward_weights::desc d(alg, src_md, wei_any, bias_md, dst_md, one, one,
                                                   one);
        bwd_weights_pd_ =
            dnnl::convolution_backward_weights::primitive_desc(d, attr, engine, fwd_pd_);
      }
    };
    if (WinogradPays(s)) {
      try {
        make(algorithm::convolution_winograd, tag::nChw16c);
        winograd_ = true;
      } catch (const dnnl::error&) {
        winograd_ = false;  // not implemented for this shape or machine: the direct one below
      }
    }
    if (!winograd_) make(algorithm::convolution_direct, tag::nhwc);
    master_md_ = master != nullptr ? *master : fwd_pd_.weights_desc();
  } catch (const dnnl::error& e) {
    return DnnlError("convolution setup", e);
  }
  return absl::OkStatus();
}

size_t ConvLayer::scratchpad_bytes() const {
  size_t bytes = fwd_pd_.scratchpad_desc().get_size();
  if (shape_.backward_data) bytes = std::max(bytes, bwd_data_pd_.scratchpad_desc().get_size());
  if (shape_.backward) bytes = std::max(bytes, bwd_weights_pd_.scratchpad_desc().get_size());
  return bytes;
}

size_t ConvLayer::activation_copy_bytes() const {
  if (!winograd_) return 0;
  size_t bytes = fwd_pd_.src_desc().get_size() + fwd_pd_.dst_desc().get_size();
  if (shape_.backward || shape_.backward_data) bytes += fwd_pd_.dst_desc().get_size();
  if (shape_.backward_data) bytes += bwd_data_pd_.diff_src_desc().get_size();
  return bytes;
}

absl::Status ConvLayer::Bind(float* src, float* dst, float* weights, float* bias, float* diff_dst,
                             float* diff_src, float* diff_weights, float* diff_bias,
                             void* scratchpad, float* weights_grad_src) {
  dst_ = dst;
  src_ = src;
  diff_dst_ = diff_dst;
  diff_src_ = diff_src;
  weights_grad_src_ = weights_grad_src;
  blk_ = {};
  fwd_steps_.clear();
  bwd_data_steps_.clear();
  bwd_weights_steps_.clear();
  diff_dst_blocked_ready_ = false;
  buffers_.clear();
  try {
    const memory master(master_md_, engine_, weights);
    const memory src_m = BindForward(master, bias, scratchpad);
    memory diff_dst_m;
    if (winograd_ && (shape_.backward || shape_.backward_data)) {
      diff_dst_m = BlockedCopy(fwd_pd_.dst_desc(), &blk_.diff_dst);
    }
    if (shape_.backward_data) BindBackwardData(master, diff_dst_m, scratchpad);
    if (shape_.backward) {
      BindBackwardWeights(src_m, diff_dst_m, diff_weights, diff_bias, scratchpad);
    }
  } catch (const dnnl::error& e) {
    return DnnlError("convolution binding", e);
  }
  for (auto* steps : {&fwd_steps_, &bwd_data_steps_, &bwd_weights_steps_}) {
    for (Step& step : *steps) {
      for (const auto& [arg, mem] : step.args) step.c_args.push_back({arg, mem.get()});
    }
  }
  return absl::OkStatus();
}

memory ConvLayer::WeightsFor(const memory& master, const memory::desc& want,
                             std::vector<Step>& steps) {
  if (want == master_md_) return master;
  buffers_.push_back(AllocateAligned(want.get_size() / sizeof(float)));
  memory m(want, engine_, buffers_.back().get());
  steps.push_back({dnnl::reorder(master, m), {{DNNL_ARG_FROM, master}, {DNNL_ARG_TO, m}}});
  return m;
}

// (The copies are made by the loops of kernels.h: faster than oneDNN's reorders here, and the
// forward one applies the ReLU on the way.)
memory ConvLayer::BlockedCopy(const memory::desc& want, float** ptr) {
  buffers_.push_back(AllocateAligned(want.get_size() / sizeof(float)));
  *ptr = buffers_.back().get();
  return memory(want, engine_, *ptr);
}

memory ConvLayer::BindForward(const memory& master, float* bias, void* scratchpad) {
  memory w = WeightsFor(master, fwd_pd_.weights_desc(), fwd_steps_);
  memory src_m, dst_m;
  if (winograd_) {
    src_m = BlockedCopy(fwd_pd_.src_desc(), &blk_.src);
    dst_m = BlockedCopy(fwd_pd_.dst_desc(), &blk_.dst);
  } else {
    src_m = memory(fwd_pd_.src_desc(), engine_, src_);
    dst_m = memory(fwd_pd_.dst_desc(), engine_, dst_);
  }
  fwd_steps_.push_back(
      {dnnl::convolution_forward(fwd_pd_),
       {{DNNL_ARG_SRC, src_m},
        {DNNL_ARG_WEIGHTS, w},
        {DNNL_ARG_BIAS, memory(fwd_pd_.bias_desc(), engine_, bias)},
        {DNNL_ARG_DST, dst_m},
        {DNNL_ARG_SCRATCHPAD, memory(fwd_pd_.scratchpad_desc(), engine_, scratchpad)}}});
  return src_m;
}

void ConvLayer::BindBackwardData(const memory& master, const memory& diff_dst_blocked,
                                 void* scratchpad) {
  memory w = WeightsFor(master, bwd_data_pd_.weights_desc(), bwd_data_steps_);
  memory dy =
      winograd_ ? diff_dst_blocked : memory(bwd_data_pd_.diff_dst_desc(), engine_, diff_dst_);
  memory dx = winograd_ ? BlockedCopy(bwd_data_pd_.diff_src_desc(), &blk_.diff_src)
                        : memory(bwd_data_pd_.diff_src_desc(), engine_, diff_src_);
  bwd_data_steps_.push_back(
      {dnnl::convolution_backward_data(bwd_data_pd_),
       {{DNNL_ARG_DIFF_DST, dy},
        {DNNL_ARG_WEIGHTS, w},
        {DNNL_ARG_DIFF_SRC, dx},
        {DNNL_ARG_SCRATCHPAD, memory(bwd_data_pd_.scratchpad_desc(), engine_, scratchpad)}}});
}

void ConvLayer::BindBackwardWeights(const memory& src_m, const memory& diff_dst_blocked,
                                    float* diff_weights, float* diff_bias, void* scratchpad) {
  const memory::desc& want = bwd_weights_pd_.diff_weights_desc();
  const memory grad_master(master_md_, engine_, diff_weights);
  memory dw = grad_master;
  if (!(want == master_md_)) {
    buffers_.push_back(AllocateAligned(want.get_size() / sizeof(float)));
    dw = memory(want, engine_, buffers_.back().get());
  }
  memory x;
  if (!winograd_) {
    x = memory(bwd_weights_pd_.src_desc(), engine_,
               weights_grad_src_ != nullptr ? weights_grad_src_ : src_);
  } else if (weights_grad_src_ != nullptr) {
    x = BlockedCopy(bwd_weights_pd_.src_desc(), &blk_.weights_grad_src);
  } else {
    x = src_m;  // the blocked copy the forward pass made
  }
  memory dy =
      winograd_ ? diff_dst_blocked : memory(bwd_weights_pd_.diff_dst_desc(), engine_, diff_dst_);
  bwd_weights_steps_.push_back(
      {dnnl::convolution_backward_weights(bwd_weights_pd_),
       {{DNNL_ARG_SRC, x},
        {DNNL_ARG_DIFF_DST, dy},
        {DNNL_ARG_DIFF_WEIGHTS, dw},
        {DNNL_ARG_DIFF_BIAS, memory(bwd_weights_pd_.diff_bias_desc(), engine_, diff_bias)},
        {DNNL_ARG_SCRATCHPAD, memory(bwd_weights_pd_.scratchpad_desc(), engine_, scratchpad)}}});
  if (!(want == master_md_)) {
    bwd_weights_steps_.push_back(
        {dnnl::reorder(dw, grad_master), {{DNNL_ARG_FROM, dw}, {DNNL_ARG_TO, grad_master}}});
  }
}

void ConvLayer::Run(std::vector<Step>& steps, dnnl::stream& s) {
  for (Step& step : steps) {
    dnnl::error::wrap_c_api(
        dnnl_primitive_execute(step.prim.get(), s.get(), static_cast<int>(step.c_args.size()),
                               step.c_args.data()),
        "could not execute a primitive");
  }
}

void ConvLayer::Forward(dnnl::stream& s) {
  diff_dst_blocked_ready_ = false;
  if (winograd_) {
    NhwcToBlocked16(src_, shape_.n, hw(), shape_.cin, blk_.src);
    Run(fwd_steps_, s);
    s.wait();
    Blocked16ToNhwc(blk_.dst, shape_.n, hw(), shape_.cout, shape_.relu, dst_);
    return;
  }
  Run(fwd_steps_, s);
  if (shape_.relu) {
    s.wait();
    ReluInPlace(dst_, static_cast<int64_t>(shape_.n) * shape_.h * shape_.w * shape_.cout);
  }
}
void ConvLayer::BlockDiffDst(dnnl::stream& s) {
  if (!winograd_ || diff_dst_blocked_ready_) return;
  s.wait();
  NhwcToBlocked16(diff_dst_, shape_.n, hw(), shape_.cout, blk_.diff_dst);
  diff_dst_blocked_ready_ = true;
}
void ConvLayer::BackwardData(dnnl::stream& s) {
  BlockDiffDst(s);
  Run(bwd_data_steps_, s);
  if (winograd_) {
    s.wait();
    Blocked16ToNhwc(blk_.diff_src, shape_.n, hw(), shape_.cin, false, diff_src_);
  }
}
void ConvLayer::BackwardWeights(dnnl::stream& s) {
  BlockDiffDst(s);
  if (blk_.weights_grad_src != nullptr) {
    NhwcToBlocked16(weights_grad_src_, shape_.n, hw(), shape_.cin, blk_.weights_grad_src);
  }
  Run(bwd_weights_steps_, s);
}

}  // namespace nanonas::engine
