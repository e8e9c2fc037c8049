// A NanoNAS candidate network as a sequence of float32 NHWC operations: the oneDNN convolutions
// (conv.h) and the hand-written kernels (kernels.h). It owns every buffer (activations, gradients,
// parameters and Adam state in flat arenas) and creates all primitives up front for the batch sizes
// it will run; the training loop (trainer.cc) then only calls LoadImages/Forward/Loss/Backward/
// AdamStep, which allocate nothing.
//
// Thread-safety: a Network is used by one thread at a time.
#ifndef NANONAS_WORKER_ENGINE_NETWORK_H_
#define NANONAS_WORKER_ENGINE_NETWORK_H_

#include <cstdint>
#include <memory>
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
    int index = 0;     // conv or batch-norm number
  };
  struct Tensor {
    int64_t offset = 0, count = 0;  // in the parameter arena (floats)
  };
  struct Plan {
    int n = 0;
    std::vector<ConvLayer> convs;  // one per conv op
  };

  Network() = default;
  absl::Status Build(const Architecture& arch, std::vector<int> batch_sizes, bool training,
                     bool first_layer_shortcut);
  Plan* FindPlan(int n);
  int64_t ActSize(int i) const;  // per image, floats
  bool producer_relu(size_t i) const;        // op i's input comes out of a ReLU
  bool consumer_masks_relu(size_t i) const;  // op i+1's backward applies op i's ReLU mask
  void PlainToMaster(int conv, const float* ohwi, float* arena) const;
  absl::Status SetUpFirstLayerShortcut();
  void FirstLayerGradients(int n);
  void MasterToPlain(int conv, const float* arena, float* ohwi) const;

  Architecture arch_;
  bool training_ = false;
  int max_batch_ = 0;
  float input_scale_ = 1.f;
  std::vector<Op> ops_;
  std::vector<Plan> plans_;
  dnnl::engine engine_;
  dnnl::stream stream_;

  // Activations: acts_[i] is the input of op i, acts_.back() the logits.
  std::vector<AlignedBuffer> acts_;
  AlignedBuffer grads_[2];  // ping-pong: gradient of activation i lives in grads_[i % 2]
  AlignedBuffer scratchpad_;
  std::vector<std::vector<uint8_t>> pool_ws_;        // per op (empty unless max pool)
  std::vector<std::vector<float>> dropout_mask_;     // per op
  std::vector<BatchNormKernel> bn_kernels_;          // per batch norm
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
  std::vector<float> col_sums_, first_row_, last_row_;  // (W, cout) sums of dy over batch/rows
  std::vector<double> dw1_;                             // (cout, 3, 3)
  struct Reorder {
    dnnl::reorder prim;
    dnnl::memory from, to;
    void Run(dnnl::stream& s) const;  // through the C API: no argument map per call
  };
  std::vector<Reorder> first_layer_reorders_;  // W -> plain, dW_x -> plain, plain dW_z -> grads
};

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_NETWORK_H_
