// Hand-written float32 kernels for the small layers where oneDNN 2.6 is slow or absent: batch norm
// (any channel count, NHWC), max pooling 2x2/2 VALID, global average pooling, dropout, dense,
// softmax cross-entropy, Adam and the input preprocessing. All tensors are NHWC, batch first.
// Loops are plain and vectorisable; nothing allocates after construction. Implemented by layer
// kind in kernels_batch_norm.cc, kernels_pooling.cc, kernels_dense_softmax.cc and
// kernels_elementwise.cc (kernels_internal.h: the thread split they share).
//
// Thread-safety: the free functions keep no state (UseAvx512KernelsForTesting aside) and may run
// concurrently on disjoint outputs. A Network with several threads calls them per batch part from
// inside its parallel region, where they run on the calling thread. Called outside a parallel
// region, large loops are split over the calling thread's OpenMP threads (omp_get_max_threads(),
// i.e. TrainOptions::threads) in chunks fixed by the thread count, so results are reproducible
// for a given thread count. A BatchNormKernel is used by one pass at a time; within it, the
// Stats and Apply phases of distinct parts (slots) may run concurrently, Finish on one thread.
#ifndef NANONAS_WORKER_ENGINE_KERNELS_H_
#define NANONAS_WORKER_ENGINE_KERNELS_H_

#include <cstdint>
#include <vector>

namespace nanonas::engine {

// Batch normalisation over rows of `channels` contiguous values ((N*H*W, C) for NHWC),
// optionally followed by ReLU. Per-channel sums run over a period P (a multiple of both C and 16)
// so that even C = 1 or 3 vectorises.
//
// The work comes in phases so that a batch cut into parts (a Network runs one part per thread)
// is normalised side by side: a statistics phase per part over its rows (each part into its own
// slot of partial sums), one Finish that combines the slots in slot order (so a given part split
// always gives the same result), then an Apply phase per part. A part is any run of whole rows;
// its tensors are passed as pointers to its first row. ForwardTraining, ForwardInference and
// Backward run the phases for a whole batch on the calling thread.
class BatchNormKernel {
 public:
  explicit BatchNormKernel(int channels, int slots = 1);
  int channels() const { return channels_; }

  // Training forward. Stats: sums of the `rows` rows of x into `slot`.
  void ForwardStats(const float* x, int64_t rows, int slot);
  // Batch statistics from slots [0, used_slots) over `total_rows` rows (biased variance for
  // normalising): writes mean and inverse standard deviation (C each) for Backward, updates the
  // moving statistics as Keras does (moving = moving * momentum + batch * (1 - momentum), with
  // the unbiased batch variance, as TF's fused batch norm) and prepares Apply.
  void ForwardFinish(int used_slots, int64_t total_rows, const float* gamma, const float* beta,
                     float epsilon, float momentum, float* mean, float* invstd, float* moving_mean,
                     float* moving_variance);
  // Inference: prepares Apply from the moving statistics.
  void InferenceCoefficients(const float* gamma, const float* beta, const float* moving_mean,
                             const float* moving_variance, float epsilon);
  // y = gamma (x - mean) invstd + beta (then ReLU) on `rows` rows with the statistics of the last
  // ForwardFinish or InferenceCoefficients. y may equal x.
  void Apply(const float* x, int64_t rows, bool relu, float* y) const;

  // Backward from dy (through the ReLU mask y > 0 when relu); x is the forward input, y its
  // output. Stats: sums over the `rows` rows into `slot`.
  void BackwardStats(const float* x, const float* y, const float* dy, int64_t rows, bool relu,
                     int slot);
  // dgamma, dbeta (C) from slots [0, used_slots) over `total_rows` rows; prepares BackwardApply.
  void BackwardFinish(int used_slots, int64_t total_rows, const float* gamma, const float* mean,
                      const float* invstd, float* dgamma, float* dbeta);
  // dx on `rows` rows. dx may equal dy.
  void BackwardApply(const float* x, const float* y, const float* dy, int64_t rows, bool relu,
                     float* dx) const;

  // The phases for a whole batch of `rows` rows, on the calling thread.
  void ForwardTraining(const float* x, int64_t rows, const float* gamma, const float* beta,
                       float epsilon, float momentum, bool relu, float* y, float* mean,
                       float* invstd, float* moving_mean, float* moving_variance);
  void ForwardInference(const float* x, int64_t rows, const float* gamma, const float* beta,
                        const float* moving_mean, const float* moving_variance, float epsilon,
                        bool relu, float* y);
  // dx may be null (only dgamma, dbeta).
  void Backward(const float* x, const float* y, const float* dy, int64_t rows, const float* gamma,
                const float* mean, const float* invstd, bool relu, float* dgamma, float* dbeta,
                float* dx);

 private:
  // A part starts on a row, so its value j has channel j mod C whatever the part: each slot
  // accumulates position j mod P.
  double* Slot(std::vector<double>& acc, int slot) { return acc.data() + slot * period_; }
  // Per-channel totals of slots [0, used) of acc into out[0..C) (slot order, then position).
  void Fold(const std::vector<double>& acc, int used, double* out);
  void Spread(const float* per_channel, float* pattern) const;  // (C) -> (P) pattern

  int channels_;
  int period_;
  std::vector<double> acc0_, acc1_;        // (slots, P)
  std::vector<double> sum_, tot0_, tot1_;  // (P), (C), (C)
  std::vector<float> pa_, pb_, pc_;        // (P) per-element coefficients
  std::vector<float> ca_, cb_, cc_;        // (C)
};

// Max pooling 2x2, stride 2, VALID: x (N, H, W, C) -> y (N, H/2, W/2, C). ws (N, H/2, W/2, C)
// records the argmax (0..3 in the order (0,0), (0,1), (1,0), (1,1); first maximum wins).
void MaxPoolForward(const float* x, int n, int h, int w, int c, float* y, uint8_t* ws);
// Inference: no workspace.
void MaxPoolForwardInference(const float* x, int n, int h, int w, int c, float* y);
// dx (N, H, W, C) from dy (N, H/2, W/2, C) and the workspace; every dx element is written.
// relu_y (the pool output y, optional) also applies the backward of a ReLU before the pool:
// gradient only where y > 0 (the pooled maximum of a ReLU output is > 0 iff its input was).
void MaxPoolBackward(const float* dy, const uint8_t* ws, int n, int h, int w, int c, float* dx,
                     const float* relu_y = nullptr);

// Global average pooling x (N, H, W, C) -> y (N, C), and its backward.
void GlobalAvgPoolForward(const float* x, int n, int hw, int c, float* y);
// relu_x (the pool input, optional) also applies the backward of a ReLU before the pool.
void GlobalAvgPoolBackward(const float* dy, int n, int hw, int c, float* dx,
                           const float* relu_x = nullptr);

// Inverted dropout: mask (count) holds 0 or 1/(1-rate); y = x * mask. Drawn from `state` (a
// SplitMix64 state advanced in place).
void DropoutForward(const float* x, int64_t count, float rate, uint64_t* state, float* mask,
                    float* y);
void DropoutBackward(const float* dy, const float* mask, int64_t count, float* dx);

// Dense: x (N, in), kernel (out, in), bias (out) -> y (N, out).
void DenseForward(const float* x, int n, int in, int out, const float* kernel, const float* bias,
                  float* y);
// dkernel (out, in), dbias (out), and dx (N, in) when not null.
void DenseBackward(const float* x, const float* dy, int n, int in, int out, const float* kernel,
                   float* dkernel, float* dbias, float* dx);
// dx (N, in) only.
void DenseBackwardInput(const float* dy, int n, int in, int out, const float* kernel, float* dx);

// Softmax cross-entropy of logits (N, K) with labels (N). Writes probabilities (N, K) when probs is
// not null and the gradient of the MEAN loss (N, K) when dlogits is not null. Returns the SUM of
// the per-example losses; *correct gets the number of argmax hits.
double SoftmaxCrossEntropy(const float* logits, const int32_t* labels, int n, int k, float* probs,
                           float* dlogits, int* correct);
// Softmax only (no labels).
void Softmax(const float* logits, int n, int k, float* probs);

// Adam, Keras form: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
// w -= lr_t m / (sqrt(v) + eps), lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) (the caller passes lr_t).
void AdamUpdate(float* w, const float* g, float* m, float* v, int64_t count, float lr_t,
                float beta1, float beta2, float epsilon);

// acc[i] += x[i].
void AccumulateInto(float* acc, const float* x, int64_t count);
// Layout changes between NHWC and oneDNN's nChw16c (channels in blocks of 16; c must be a multiple
// of 16) for the Winograd convolutions. Blocked16ToNhwc optionally applies a ReLU on the way.
void NhwcToBlocked16(const float* src, int n, int64_t hw, int c, float* dst);
void Blocked16ToNhwc(const float* src, int n, int64_t hw, int c, bool relu, float* dst);
// y = max(y, 0) in place.
void ReluInPlace(float* y, int64_t count);
// ReLU backward in place for a fused ReLU: dy = y > 0 ? dy : 0.
void ReluBackwardInPlace(const float* y, int64_t count, float* dy);

// Tests only: false forces the portable (auto-vectorised) paths where an AVX-512 one exists, so
// that both are tested on AVX-512 machines. Not thread-safe; default true.
void UseAvx512KernelsForTesting(bool enable);

// Gathers images (uint8, image_bytes each) into a float batch, multiplied by scale.
void GatherImages(const uint8_t* images, int64_t image_bytes, const int64_t* indices, int n,
                  float scale, float* out);

}  // namespace nanonas::engine

#endif  // NANONAS_WORKER_ENGINE_KERNELS_H_
