// The host memory of training a candidate, as a pure function of its shapes: an upper estimate of
// the peak resident memory (bytes) of an Evaluate/Train run (worker/engine/trainer.h) of an
// architecture on a dataset of `dataset_bytes` decoded pixels, process baseline included. Used to
// skip candidates whose training cannot fit a host before spending time on them (the coordinator's
// host_memory_bytes limit, the worker child's refusal).
//
// It follows the buffers worker/engine/network.cc allocates. What oneDNN decides (weights layouts,
// scratchpads, Winograd) is replaced by formulas of the shapes fitted, with a margin, to oneDNN
// 2.6.3's own figures (AVX-512) over the convolutions of NanoNAS's search space
// (tests/resources/host_memory_test.cc checks them and the whole estimate against a measured peak).
//
//   int64_t need = EstimateHostTrainingBytes(arch, images * h * w * c, {.batch_size = 16});
//
// Pure functions, no I/O, no oneDNN; thread-safe.
#ifndef NANONAS_COMMON_RESOURCES_HOST_MEMORY_H_
#define NANONAS_COMMON_RESOURCES_HOST_MEMORY_H_

#include <cstdint>

#include "common/arch/architecture.h"

namespace nanonas {

struct HostTrainingOptions {
  int batch_size = 16;  // training batch (TrainOptions::batch_size)
  int threads = 1;      // engine threads (TrainOptions::threads)
  // The pixels are a memory-mapped file (common/data/mapped.h) rather than a decoded copy on the
  // heap: they are file-backed, shared between the processes mapping the file and reclaimable,
  // so they are not counted (the labels and indices still are).
  bool dataset_mapped = false;
};

// What the estimate covers: the process baseline it assumes (32 MiB), the dataset's pixels unless
// options.dataset_mapped, the per-image labels and indices, and the engine's buffers (activations,
// gradients, parameters and optimizer state, oneDNN scratchpads, weight copies and primitives)
// with a 25% margin on the buffers. With dataset_mapped = false it bounds the peak resident memory
// (VmHWM) of a process that holds the decoded dataset; with dataset_mapped = true it bounds the
// peak ANONYMOUS memory (RssAnon) of a process that maps it, which is what a worker compares with
// its memory budget (a worker's evaluation child maps the cached file; a copy made to resize the
// dataset is anonymous: count it in dataset_bytes with dataset_mapped = false).
// REQUIRES: `arch` comes from BuildArchitecture.
int64_t EstimateHostTrainingBytes(const Architecture& arch, int64_t dataset_bytes,
                                  const HostTrainingOptions& options);

// ---- The per-convolution formulas (exposed for the tests that fit them to oneDNN) -------------

// One 3x3 convolution as the engine creates it: batch n (one part's), map h x w, channels,
// `threads` oneDNN threads for its primitives.
struct ConvFootprintShape {
  int n = 1, h = 1, w = 1, cin = 1, cout = 1, threads = 1;
};

// worker/engine/conv.h's WinogradPays rule (shapes only; whether the machine has Winograd is not
// known here, so the estimate assumes it does where the rule allows it).
bool WinogradShape(int h, int w, int cin, int cout);

// Floats of the weights in any layout oneDNN picks for the convolution's primitives (upper bound
// of the master, backward-data and backward-weights layouts: blocks of at most 16 input and 64
// output channels).
int64_t ConvWeightLayoutFloats(int cin, int cout);

// Bytes of the largest scratchpad among the convolution's forward, backward-data and
// backward-weights primitives (direct or, where WinogradShape, Winograd F(4x4,3x3)).
int64_t ConvScratchpadBytes(const ConvFootprintShape& s);

// Bytes of the blocked activation copies a Winograd convolution binds (0 for direct).
int64_t ConvActivationCopyBytes(const ConvFootprintShape& s);

}  // namespace nanonas

#endif  // NANONAS_COMMON_RESOURCES_HOST_MEMORY_H_
