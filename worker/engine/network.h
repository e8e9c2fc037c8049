// A NanoNAS candidate network as a sequence of float32 NHWC operations: the oneDNN convolutions
// (conv.h) and the hand-written kernels (kernels.h). It owns every buffer (activations, gradients,
// parameters and Adam state in flat arenas) and creates all primitives up front for the batch sizes
// it will run; the training loop (trainer.cc) then only calls LoadImages/Forward/Loss/Backward/
// AdamStep, which allocate nothing. Implemented in network.cc (construction, plans and teams),
// network_weights.cc (initialisation, weights in and out), network_forward.cc,
// network_backward.cc (the passes and the Adam step) and network_first_layer.cc (the first-layer
// shortcut); network_internal.h holds the team of threads the passes share.
//
// Thread-safety: a Network is used by one thread at a time (a pass runs its own OpenMP team).
#ifndef NANONAS_WORKER_ENGINE_NETWORK_H_
#define NANONAS_WORKER_ENGINE_NETWORK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/arch/weights.h"
#include "common/data/dataset.h"
#include "dnnl.hpp"
#include "worker/engine/conv.h"
#include "worker/engine/kernels.h"

namespace nanonas::engine {

inline constexpr float kBatchNormEpsilon = 1e-3f;   // Keras
inline constexpr float kBatchNormMomentum = 0.99f;  // Keras
inline constexpr float kDropoutRate = 0.5f;
inline constexpr float kAdamBeta1 = 0.9f, kAdamBeta2 = 0.999f, kAdamEpsilon = 1e-7f;

class Network {
 public:
  // batch_sizes: every batch size that will be run (primitives are made for each); training adds
  // the backward pass, gradients and Adam state. INVALID_ARGUMENT for empty or non-positive sizes,
  // INTERNAL on oneDNN failures.
  // `first_layer_shortcut` (2023 variant) computes the input BatchNorm's gradients without a
  // backward-data convolution (see below); false only to test it against the plain path.
  static absl::StatusOr<std::unique_ptr<Network>> Create(const Architecture& arch,
                                                         std::vector<int> batch_sizes,
                                                         bool training,
                                                         bool first_layer_shortcut = true);
  ~Network();

  // Keras default initialisation from `seed`: Glorot-uniform kernels, zero biases, BN gamma 1,
  // beta 0, moving mean 0, moving variance 1. Also seeds dropout and resets Adam.
  void InitializeKeras(uint64_t seed);
  // INVALID_ARGUMENT when the weights do not match the architecture (names the tensor).
  absl::Status SetWeights(const ModelWeights& weights);
  ModelWeights GetWeights() const;
  // The gradients of the last Backward() laid out as ModelWeights (BN moving statistics empty).
  ModelWeights GetGradients() const;

  // Loads n images (n must be one of the batch sizes) into the input, applying the preprocessing
  // (x/255 for the 2023 variant, none for 2024).
  void LoadImages(const Dataset& data, const int64_t* indices, int n);
  float* input() { return acts_[0].get(); }  // (n, H, W, C)

  // Forward pass of n loaded images. Training mode uses batch statistics (and updates the moving
  // ones) and dropout; inference mode the moving statistics and no dropout.
  absl::Status Forward(int n, bool training);
  const float* logits() const { return acts_.back().get(); }  // (n, classes)
  // Softmax cross-entropy of the logits: returns the summed loss, counts argmax hits, and (in a
  // training network) stores the gradient of the mean loss for Backward().
  double Loss(int n, const int32_t* labels, int* correct);
  absl::Status Backward(int n);
  // One Adam step (Keras form) on every trainable parameter with the last gradients.
  void AdamStep(float learning_rate);

  void set_dropout_state(uint64_t state) { dropout_state_ = state; }
  int64_t trainable_parameter_count() const { return trainable_count_; }
  int64_t buffer_bytes() const { return buffer_bytes_; }
  const Architecture& arch() const { return arch_; }
  int max_batch() const { return max_batch_; }

 private:
  // The parameters in buffer p (params_ or param_grads_) in ModelWeights form, without the
  // BatchNorm moving statistics.
  ModelWeights ParamsAsWeights(const float* p) const;
  enum class OpKind { kBatchNorm, kConv, kMaxPool, kGlobalAvgPool, kDropout, kDense };
  struct Op {
    OpKind kind;
    int h, w, cin;     // input (per image)
    int oh, ow, cout;  // output
    bool relu = false;
    int index = 0;  // conv or batch-norm number
  };
  struct Tensor {
    int64_t offset = 0, count = 0;  // in the parameter arena (floats)
  };
  // Primitives for one batch size n. With T >= 2 threads the batch is cut into P = min(T, n)
  // parts of consecutive images and a pass runs as one OpenMP parallel region in which each
  // thread carries its own parts through every operation (a single-threaded ConvLayer per part
  // and convolution, the hand-written kernels on the part's slice of the NHWC tensors). Threads
  // meet only where the whole batch is needed: batch-norm statistics, dropout, the dense layer's
  // weight gradient. oneDNN 2.6's own threading of these small convolutions gains little or loses
  // (backward weights reduces across threads), and loops that split tensors differently from the
  // convolutions read half their data from the other core's cache; whole images per thread scale.
  // Part p > 0 writes its convolution weight gradients into part_grads_[p - 1], summed into
  // param_grads_ in part order at the end of the pass, so a given thread count always gives
  // identical results.
  struct Plan {
    int n = 0;
    std::vector<int> part_begin;                // first image of each part (P entries) and n
    std::vector<std::vector<ConvLayer>> convs;  // [conv op][part]
    int parts() const { return static_cast<int>(part_begin.size()) - 1; }
    int part_size(int p) const { return part_begin[p + 1] - part_begin[p]; }
  };
  struct Team;  // the threads of one pass and the parts each runs (network_internal.h)
  // Runs body(team) on plan.parts() threads (inline for one part). INTERNAL when a oneDNN call
  // inside failed.
  template <typename F>
  absl::Status RunTeam(const Plan& plan, const char* what, F&& body);
  void ForwardOps(const Team& t, Plan* plan, int n, bool training);
  void BackwardOps(const Team& t, Plan* plan, int n);
  void RecordError(const dnnl::error& e);  // from inside a team (first error wins)
  // Op i's tensors in a pass: input x and output y (batch-contiguous) with their per-image
  // sizes, and the ping-pong gradient buffers dy (of y) and dx (of x, null for op 0).
  struct OpTensors {
    float* x;
    float* y;
    int64_t in, out;
    float* dy;
    float* dx;
  };
  OpTensors TensorsOf(int i) const;
  // Part q's slice of a gradient buffer (see grads_).
  float* PartGrad(float* buffer, const Plan& plan, int q) const {
    return buffer + plan.part_begin[q] * max_act_;
  }
  // The steps of one operation i of a pass that need more than a call per part.
  void ForwardBatchNorm(const Team& t, const Plan& plan, int i, int n, bool training);
  void BackwardBatchNorm(const Team& t, const Plan& plan, int i, int n);
  void BackwardConv(const Team& t, Plan* plan, int i);
  void BackwardDense(const Team& t, const Plan& plan, int i, int n);
  // The parts' convolution gradients into param_grads_, in part order (end of a backward pass).
  void SumPartGradients(const Team& t, const Plan& plan);

  Network() = default;
  absl::Status Build(const Architecture& arch, std::vector<int> batch_sizes, bool training,
                     bool first_layer_shortcut);
  // The steps of Build, in order: the operations from the layer list; the plans (convolution
  // primitives per batch size and part); the parameter arenas; activations, gradients and per-op
  // state; the convolutions bound to their slices of the buffers.
  absl::Status BuildOps(const Architecture& arch, int* n_conv, int* n_bn);
  absl::Status BuildPlans(const std::vector<int>& batch_sizes, int n_conv, size_t* scratch_bytes,
                          int* max_parts);
  void LayOutParameters(int n_conv, int n_bn, int max_parts);
  void AllocateBuffers(size_t scratch_bytes, int max_parts);
  absl::Status BindConvolutions(int max_parts);
  Plan* FindPlan(int n);
  int64_t ActSize(int i) const;              // per image, floats
  bool producer_relu(size_t i) const;        // op i's input comes out of a ReLU
  bool consumer_masks_relu(size_t i) const;  // op i+1's backward applies op i's ReLU mask
  // INVALID_ARGUMENT naming the first tensor of `w` that does not match the architecture.
  absl::Status CheckWeights(const ModelWeights& w) const;
  const Op& ConvOp(int conv) const;  // the op of convolution number `conv`
  // Reorders convolution `conv`'s kernel between the plain (O, 3, 3, I) layout and the master
  // layout in the arena, in the direction `to_master` says.
  void ReorderConvWeights(int conv, const float* from, float* to, bool to_master) const;
  void PlainToMaster(int conv, const float* ohwi, float* arena) const;
  void MasterToPlain(int conv, const float* arena, float* ohwi) const;
  absl::Status SetUpFirstLayerShortcut();
  // Sums of the first conv's dy for images [begin, begin + count) into the part's row sums.
  void FirstLayerSums(int part, int begin, int count);
  // dgamma, dbeta of the input batch norm and the conv's weight gradient from the parts' sums.
  void FirstLayerGradients(int parts);

  Architecture arch_;
  bool training_ = false;
  int max_batch_ = 0;
  float input_scale_ = 1.f;
  std::vector<Op> ops_;
  std::vector<Plan> plans_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<dnnl::stream> part_streams_;  // one per part (thread)
  std::vector<AlignedBuffer> part_grads_;   // arena-shaped gradients of parts 1..P-1
  std::vector<AlignedBuffer> part_dwx_;     // first-layer shortcut dW_x of parts 1..P-1
  size_t scratch_floats_ = 0;               // scratchpad per part
  std::string team_error_;                  // first oneDNN error inside a team

  // Activations: acts_[i] is the input of op i, acts_.back() the logits.
  std::vector<AlignedBuffer> acts_;
  // Ping-pong: the gradient of activation i lives in grads_[i % 2], part q of a batch at
  // part_begin[q] * max_act_ (see BackwardOps). The loss gradient has its own buffer.
  AlignedBuffer grads_[2];
  AlignedBuffer dlogits_;
  int64_t max_act_ = 0;  // largest activation after the input, floats per image
  AlignedBuffer scratchpad_;
  std::vector<std::vector<uint8_t>> pool_ws_;     // per op (empty unless max pool)
  std::vector<std::vector<float>> dropout_mask_;  // per op
  std::vector<BatchNormKernel> bn_kernels_;       // per batch norm
  std::vector<std::vector<float>> bn_mean_, bn_invstd_, bn_moving_mean_, bn_moving_var_;

  // Parameters, their gradients and Adam moments in four arenas of identical layout.
  std::vector<Tensor> conv_w_, conv_b_, bn_gamma_, bn_beta_;
  Tensor dense_w_, dense_b_;
  std::vector<dnnl::memory::desc> conv_master_md_;
  int64_t arena_size_ = 0, trainable_count_ = 0;
  AlignedBuffer params_, param_grads_, adam_m_, adam_v_;
  int64_t adam_t_ = 0;
  uint64_t dropout_state_ = 0;
  int64_t buffer_bytes_ = 0;

  // First-layer shortcut (2023 variant, training): the input BatchNorm only needs dgamma, dbeta,
  // which follow from the first conv's weight gradient with the BN *input* x as source (dW_x)
  // and from dW_1 (the weight gradient of an all-ones input, a few sums of dy):
  //   z = a x + b (a = gamma invstd, b = beta - mean a) => dW_z = a dW_x + b dW_1,
  //   dbeta = sum W dW_1, dgamma = invstd sum W (dW_x - mean dW_1).
  // This replaces the backward-data convolution of 1-3 input channels, oneDNN's slowest primitive
  // here (channels padded to 16).
  bool first_layer_shortcut_ = false;
  AlignedBuffer dwx_master_;
  std::vector<float> w_plain_, dwx_plain_, dwz_plain_;  // (cout, 3, 3, cin)
  // Per part (W, cout): sums of dy over the part's images and rows, over first rows, last rows.
  std::vector<float> col_sums_, first_row_, last_row_;
  std::vector<double> dw1_;  // (cout, 3, 3)
  struct Reorder {
    dnnl::reorder prim;
    dnnl::memory from, to;
    void Run(dnnl::stream& s) const;  // through the C API: no argument map per call
  };
  std::vector<Reorder> first_layer_reorders_;  // W -> plain, dW_x -> plain, plain dW_z -> grads
};

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_NETWORK_H_
