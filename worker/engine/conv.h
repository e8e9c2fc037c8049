// One 3x3 SAME stride-1 convolution with bias (and optionally a fused ReLU) on NHWC float32
// tensors for one batch size, on oneDNN 2.6. Activations stay NHWC (plain, the best layout for the
// small channel counts of NanoNAS); the weights use the layout oneDNN picks (format_tag::any), the
// "master" layout in which the network keeps and updates them. Primitives, memories, argument maps
// and reorders are created once (Init + Bind) and reused by every step.
//
// Thread-safety: a ConvLayer is used by one thread at a time (a Network gives each batch part its
// own); it runs its primitives on the stream it is given.
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
  // Use oneDNN's Winograd F(4x4,3x3) (jit_wino_4x3) where WinogradPays() says it is faster and the
  // library has it; false forces the direct algorithm (tests compare the two).
  bool allow_winograd = true;
};

// The measured rule (1 thread, mb16, oneDNN 2.6.3, AVX-512 Zen 4; forward + backward-data +
// backward-weights, including the copies to and from the blocked layout Winograd needs): channels
// in multiples of 16 on both sides, maps of at least 10x10, and either >= 32 input channels or a
// map of >= 400 pixels. ic32oc48 12x12: 1.60 -> 0.91 ms + 0.06 ms of copies; ic16oc32 25x25:
// 2.51 -> 1.98 ms + ~0.15 ms; ic16oc32 14x14: 0.79 -> 0.71 ms, no gain after the copies;
// nothing at 7x7 or smaller (ic32oc48 7x7, ic48oc60 6x6). Checked again on a Zen 5 machine with
// batch parts (network.h): Winograd for ic16oc32 14x14 made (16,3) at 28x28x1 train 10-18% slower
// at 1 and 2 threads.
bool WinogradPays(const ConvShape& shape);

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
  // Bytes of the blocked activation copies Bind() allocates for Winograd (0 for direct).
  size_t activation_copy_bytes() const;

  // Binds the tensors (all NHWC, batch n; weights in the master layout; bias (cout)). Pointers for
  // the backward pass may be null when not created. `scratchpad` holds scratchpad_bytes().
  // `weights_grad_src`, when not null, replaces src as the input of the weight gradient (a tensor
  // of the same shape; see Network's first-layer shortcut).
  absl::Status Bind(float* src, float* dst, float* weights, float* bias, float* diff_dst,
                    float* diff_src, float* diff_weights, float* diff_bias, void* scratchpad,
                    float* weights_grad_src = nullptr);

  void Forward(dnnl::stream& s);
  // With Winograd, diff_dst is read (into a blocked copy) by the first of BackwardData and
  // BackwardWeights after each Forward; write it before either of them.
  void BackwardData(dnnl::stream& s);     // diff_src from diff_dst (ReLU mask applied by caller)
  void BackwardWeights(dnnl::stream& s);  // diff_weights, diff_bias (overwritten)

  const ConvShape& shape() const { return shape_; }
  bool winograd() const { return winograd_; }

 private:
  struct Step {
    Step(dnnl::primitive p, std::unordered_map<int, dnnl::memory> a)
        : prim(std::move(p)), args(std::move(a)) {}
    dnnl::primitive prim;
    std::unordered_map<int, dnnl::memory> args;
    std::vector<dnnl_exec_arg_t> c_args;  // built once: the C++ execute() builds one per call
  };
  static void Run(std::vector<Step>& steps, dnnl::stream& s);
  // The steps of Bind (they throw dnnl::error). WeightsFor: a memory in `want` holding the master
  // weights, appending a reorder to `steps` when the layouts differ. BlockedCopy: the primitive's
  // view of an NHWC activation under Winograd, a blocked copy allocated here (*ptr). Each Bind*
  // appends the steps of one primitive; BindForward returns the memory its source is read from.
  dnnl::memory WeightsFor(const dnnl::memory& master, const dnnl::memory::desc& want,
                          std::vector<Step>& steps);
  dnnl::memory BlockedCopy(const dnnl::memory::desc& want, float** ptr);
  dnnl::memory BindForward(const dnnl::memory& master, float* bias, void* scratchpad);
  void BindBackwardData(const dnnl::memory& master, const dnnl::memory& diff_dst_blocked,
                        void* scratchpad);
  void BindBackwardWeights(const dnnl::memory& src_m, const dnnl::memory& diff_dst_blocked,
                           float* diff_weights, float* diff_bias, void* scratchpad);
  void BlockDiffDst(dnnl::stream& s);
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
  // Winograd runs on blocked activations (nChw16c): the NHWC tensors are reordered into these
  // around each pass. The blocked diff_dst is made once per backward pass (by whichever of
  // BackwardWeights/BackwardData runs first after Forward).
  bool winograd_ = false;
  bool diff_dst_blocked_ready_ = false;
  float *src_ = nullptr, *diff_dst_ = nullptr, *diff_src_ = nullptr;
  float* weights_grad_src_ = nullptr;
  struct Blocked {
    float *src = nullptr, *dst = nullptr, *diff_dst = nullptr, *diff_src = nullptr;
    float* weights_grad_src = nullptr;
  } blk_;
  int64_t hw() const { return static_cast<int64_t>(shape_.h) * shape_.w; }
};

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_CONV_H_
