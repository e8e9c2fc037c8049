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
  return absl::InternalError(absl::StrCat("oneDNN ", what, ": ", e.what(), " (status ",
                                          static_cast<int>(e.status), ")"));
}
}  // namespace

absl::Status ConvLayer::Init(const dnnl::engine& engine, const ConvShape& s,
                             const memory::desc* master) {
  shape_ = s;
  engine_ = engine;
  try {
    const memory::dims src_dims = {s.n, s.cin, s.h, s.w};
    const memory::dims dst_dims = {s.n, s.cout, s.h, s.w};
    const memory::dims wei_dims = {s.cout, s.cin, 3, 3};
    const memory::dims one = {1, 1};
    const memory::desc src_md(src_dims, dt::f32, tag::nhwc);
    const memory::desc dst_md(dst_dims, dt::f32, tag::nhwc);
    const memory::desc wei_any(wei_dims, dt::f32, tag::any);
    const memory::desc bias_md({s.cout}, dt::f32, tag::x);

    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // The ReLU is applied by a loop after the convolution: oneDNN 2.6 has no training
    // implementation with an eltwise post-op for these shapes.
    const dnnl::primitive_attr& fwd_attr = attr;
    dnnl::convolution_forward::desc fwd_d(prop_kind::forward_training,
                                          algorithm::convolution_direct, src_md, wei_any, bias_md,
                                          dst_md, one, one, one);
    fwd_pd_ = dnnl::convolution_forward::primitive_desc(fwd_d, fwd_attr, engine);
    master_md_ = master != nullptr ? *master : fwd_pd_.weights_desc();
    if (s.backward_data) {
      dnnl::convolution_backward_data::desc d(algorithm::convolution_direct, src_md, wei_any,
                                              dst_md, one, one, one);
      bwd_data_pd_ = dnnl::convolution_backward_data::primitive_desc(d, attr, engine, fwd_pd_);
    }
    if (s.backward) {
      dnnl::convolution_backward_weights::desc d(algorithm::convolution_direct, src_md, wei_any,
                                                 bias_md, dst_md, one, one, one);
      bwd_weights_pd_ =
          dnnl::convolution_backward_weights::primitive_desc(d, attr, engine, fwd_pd_);
    }
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

absl::Status ConvLayer::Bind(float* src, float* dst, float* weights, float* bias, float* diff_dst,
                             float* diff_src, float* diff_weights, float* diff_bias,
                             void* scratchpad, float* weights_grad_src) {
  dst_ = dst;
  fwd_steps_.clear();
  bwd_data_steps_.clear();
  bwd_weights_steps_.clear();
  buffers_.clear();
  try {
    const memory master(master_md_, engine_, weights);
    // Returns a memory in `want` holding the master weights (a reorder step when layouts differ).
    auto weights_for = [&](const memory::desc& want, std::vector<Step>& steps) -> memory {
      if (want == master_md_) return master;
      buffers_.push_back(AllocateAligned(want.get_size() / sizeof(float)));
      memory m(want, engine_, buffers_.back().get());
      steps.push_back({dnnl::reorder(master, m), {{DNNL_ARG_FROM, master}, {DNNL_ARG_TO, m}}});
      return m;
    };

    {
      memory w = weights_for(fwd_pd_.weights_desc(), fwd_steps_);
      fwd_steps_.push_back(
          {dnnl::convolution_forward(fwd_pd_),
           {{DNNL_ARG_SRC, memory(fwd_pd_.src_desc(), engine_, src)},
            {DNNL_ARG_WEIGHTS, w},
            {DNNL_ARG_BIAS, memory(fwd_pd_.bias_desc(), engine_, bias)},
            {DNNL_ARG_DST, memory(fwd_pd_.dst_desc(), engine_, dst)},
            {DNNL_ARG_SCRATCHPAD, memory(fwd_pd_.scratchpad_desc(), engine_, scratchpad)}}});
    }
    if (shape_.backward_data) {
      memory w = weights_for(bwd_data_pd_.weights_desc(), bwd_data_steps_);
      bwd_data_steps_.push_back(
          {dnnl::convolution_backward_data(bwd_data_pd_),
           {{DNNL_ARG_DIFF_DST, memory(bwd_data_pd_.diff_dst_desc(), engine_, diff_dst)},
            {DNNL_ARG_WEIGHTS, w},
            {DNNL_ARG_DIFF_SRC, memory(bwd_data_pd_.diff_src_desc(), engine_, diff_src)},
            {DNNL_ARG_SCRATCHPAD,
             memory(bwd_data_pd_.scratchpad_desc(), engine_, scratchpad)}}});
    }
    if (shape_.backward) {
      const memory::desc& want = bwd_weights_pd_.diff_weights_desc();
      const memory grad_master(master_md_, engine_, diff_weights);
      memory dw = grad_master;
      if (!(want == master_md_)) {
        buffers_.push_back(AllocateAligned(want.get_size() / sizeof(float)));
        dw = memory(want, engine_, buffers_.back().get());
      }
      bwd_weights_steps_.push_back(
          {dnnl::convolution_backward_weights(bwd_weights_pd_),
           {{DNNL_ARG_SRC, memory(bwd_weights_pd_.src_desc(), engine_,
                                  weights_grad_src != nullptr ? weights_grad_src : src)},
            {DNNL_ARG_DIFF_DST, memory(bwd_weights_pd_.diff_dst_desc(), engine_, diff_dst)},
            {DNNL_ARG_DIFF_WEIGHTS, dw},
            {DNNL_ARG_DIFF_BIAS, memory(bwd_weights_pd_.diff_bias_desc(), engine_, diff_bias)},
            {DNNL_ARG_SCRATCHPAD,
             memory(bwd_weights_pd_.scratchpad_desc(), engine_, scratchpad)}}});
      if (!(want == master_md_)) {
        bwd_weights_steps_.push_back(
            {dnnl::reorder(dw, grad_master), {{DNNL_ARG_FROM, dw}, {DNNL_ARG_TO, grad_master}}});
      }
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

void ConvLayer::Run(std::vector<Step>& steps, dnnl::stream& s) {
  for (Step& step : steps) {
    dnnl::error::wrap_c_api(
        dnnl_primitive_execute(step.prim.get(), s.get(), static_cast<int>(step.c_args.size()),
                               step.c_args.data()),
        "could not execute a primitive");
  }
}

void ConvLayer::Forward(dnnl::stream& s) {
  Run(fwd_steps_, s);
  if (shape_.relu) {
    s.wait();
    ReluInPlace(dst_, static_cast<int64_t>(shape_.n) * shape_.h * shape_.w * shape_.cout);
  }
}
void ConvLayer::BackwardData(dnnl::stream& s) {
  Run(bwd_data_steps_, s);
}
void ConvLayer::BackwardWeights(dnnl::stream& s) {
  Run(bwd_weights_steps_, s);
}

}  // namespace nanonas::engine
