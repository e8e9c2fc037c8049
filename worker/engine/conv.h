// One 3x3 SAME stride-1 convolution with bias (and optionally a fused ReLU) on NHWC float32
// tensors for one batch size, on oneDNN 2.6. Activations stay NHWC (plain, the best layout for the
// small channel counts of NanoNAS); the weights use the layout oneDNN picks (format_tag::any), the
// "master" layout in which the network keeps and updates them. Primitives, memories, argument maps
// and reorders are created once (Init + Bind) and reused by every step.
#ifndef NANONAS_WORKER_ENGINE_CONV_H_
#define NANONAS_WORKER_ENGINE_CONV_H_

#include <memory>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "dnnl.hpp"

namespace nanonas::engine {

struct ConvShape {
  int n = 1, h = 1, w = 1, cin = 1, cout = 1;
  bool relu = false;           // ReLU on the output (applied in place after the convolution)
  bool backward = false;       // create backward-weights (training)
  bool backward_data = false;  // create backward-data (the input needs a gradient)
};

// A float vector aligned to 64 bytes (oneDNN and AVX-512 like it).
struct AlignedFree {
  void operator()(float* p) const;
};
using AlignedBuffer = std::unique_ptr<float[], AlignedFree>;
AlignedBuffer AllocateAligned(size_t floats);  // zero-filled

class ConvLayer {
 public:
  // Creates the primitive descriptors. `master` is the weights layout to keep (null: take the one
  // the forward primitive prefers; see master_weights_desc()). INTERNAL on a oneDNN failure.
  absl::Status Init(const dnnl::engine& engine, const ConvShape& shape,
                    const dnnl::memory::desc* master);

  const dnnl::memory::desc& master_weights_desc() const { return master_md_; }
  size_t scratchpad_bytes() const;

  // Binds the tensors (all NHWC, batch n; weights in the master layout; bias (cout)). Pointers for
  // the backward pass may be null when not created. `scratchpad` holds scratchpad_bytes().
  // `weights_grad_src`, when not null, replaces src as the input of the weight gradient (a tensor
  // of the same shape; see Network's first-layer shortcut).
  absl::Status Bind(float* src, float* dst, float* weights, float* bias, float* diff_dst,
                    float* diff_src, float* diff_weights, float* diff_bias, void* scratchpad,
                    float* weights_grad_src = nullptr);

  void Forward(dnnl::stream& s);
  void BackwardData(dnnl::stream& s);     // diff_src from diff_dst (ReLU mask applied by caller)
  void BackwardWeights(dnnl::stream& s);  // diff_weights, diff_bias (overwritten)

  const ConvShape& shape() const { return shape_; }

 private:
  struct Step {
    Step(dnnl::primitive p, std::unordered_map<int, dnnl::memory> a)
        : prim(std::move(p)), args(std::move(a)) {}
    dnnl::primitive prim;
    std::unordered_map<int, dnnl::memory> args;
    std::vector<dnnl_exec_arg_t> c_args;  // built once: the C++ execute() builds one per call
  };
  static void Run(std::vector<Step>& steps, dnnl::stream& s);
  ConvShape shape_;
  dnnl::engine engine_;
  dnnl::memory::desc master_md_;
  dnnl::convolution_forward::primitive_desc fwd_pd_;
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd_;
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd_;
  // Reorders between the master weights layout and what each primitive wants, when they differ.
  std::vector<Step> fwd_steps_, bwd_data_steps_, bwd_weights_steps_;
  std::vector<AlignedBuffer> buffers_;
  float* dst_ = nullptr;
};

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_CONV_H_
