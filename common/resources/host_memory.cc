#include "common/resources/host_memory.h"

#include <algorithm>

namespace nanonas {
namespace {

constexpr int64_t kMiB = 1LL << 20;
constexpr int64_t kFloat = sizeof(float);

int64_t PadTo(int64_t c, int64_t block) { return (c + block - 1) / block * block; }

}  // namespace

bool WinogradShape(int h, int w, int cin, int cout) {
  return cin % 16 == 0 && cout % 16 == 0 && h >= 10 && w >= 10 && (cin >= 32 || h * w >= 400);
}

int64_t ConvWeightLayoutFloats(int cin, int cout) {
  // oneDNN 2.6.3, AVX-512, over the grid of host_memory_test.cc: the forward (brgconv) layout
  // blocks the output channels by up to 64 (74 -> 111 channels: 9 * 74 * 128 floats), the
  // backward layouts pad both sides to 16.
  return 9 * PadTo(cin, 16) * PadTo(cout, 64);
}

int64_t ConvScratchpadBytes(const ConvFootprintShape& s) {
  const int64_t t = std::max(1, s.threads);
  if (WinogradShape(s.h, s.w, s.cin, s.cout)) {
    // jit_wino_4x3 either transforms the whole batch at once (36 floats per 4x4 tile and channel,
    // inputs and outputs, and the transformed weights) or works through cache-sized blocks
    // (about 6.4 to 11 MiB at 1 thread, +0.9 MiB per thread); which one depends on the machine's
    // caches, so both are counted. Measured at most 0.88 of this over the grid.
    const int64_t tiles = static_cast<int64_t>(s.n) * ((s.h + 3) / 4) * ((s.w + 3) / 4);
    const int64_t whole_batch =
        36 * kFloat * (tiles * (s.cin + s.cout) + static_cast<int64_t>(s.cin) * s.cout);
    return 8 * kMiB + t * kMiB + 2 * 36 * kFloat * s.cin * s.cout + whole_batch * 5 / 4;
  }
  // Direct (brgconv / jit): a few KiB of descriptors per thread and, for the weight gradient with
  // several threads, a reduction copy of the weights and bias per thread. Measured at most 0.95.
  return 4096 * (t + 1) +
         kFloat * t * (9 * PadTo(s.cin, 16) * PadTo(s.cout, 16) + PadTo(s.cout, 16));
}

int64_t ConvActivationCopyBytes(const ConvFootprintShape& s) {
  if (!WinogradShape(s.h, s.w, s.cin, s.cout)) return 0;
  // Blocked (nChw16c) src, dst, diff_dst and diff_src; channels are multiples of 16 here.
  return kFloat * s.n * s.h * s.w * 2 * (s.cin + s.cout);
}

// The sum follows worker/engine/network.cc's allocations; each term says which.
int64_t EstimateHostTrainingBytes(const Architecture& arch, int64_t dataset_bytes,
                                  const HostTrainingOptions& options) {
  // Process baseline: code and data of the linked libraries (oneDNN, OpenMP, libstdc++, absl) and
  // the heap of an evaluation process before training (measured: ~12 MiB for a test binary).
  constexpr int64_t kBaseline = 32 * kMiB;
  constexpr int64_t kPerPrimitive = 256LL << 10;  // JIT code and descriptors of one primitive
  const int64_t batch = std::max(1, options.batch_size);
  const int threads = std::max(1, options.threads);
  // With T threads a batch runs as min(T, batch) parts side by side (network.h): each part has
  // its own primitives, scratchpad, weight copies and (but the first) gradient arena.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, batch));
  const int part_batch = static_cast<int>((batch + parts - 1) / parts);

  // One activation per operation (Rescale, a ReLU after a batch norm and Softmax run in place),
  // two gradient buffers of the largest activation, the max-pool workspaces (bytes) and dropout
  // masks (floats).
  const InputShape& in = arch.spec.input;
  int64_t act_floats = static_cast<int64_t>(in.height) * in.width * in.channels;
  int64_t max_act = 0, side_bytes = 0, conv_weights = 0, other_params = 0, convs = 0;
  int64_t scratch = 0, conv_copies = 0;
  for (const Layer& l : arch.layers) {
    const int64_t out = static_cast<int64_t>(l.out_h) * l.out_w * l.out_c;
    if (l.kind == LayerKind::kRescale || l.kind == LayerKind::kReLU ||
        l.kind == LayerKind::kSoftmax) {
      continue;
    }
    act_floats += out;
    max_act = std::max(max_act, out);
    if (l.kind == LayerKind::kMaxPool2x2) side_bytes += out;
    if (l.kind == LayerKind::kDropout) side_bytes += kFloat * out;
    if (l.kind == LayerKind::kConv3x3) {
      // Scratchpads are per part (primitives of one part's batch); the activation copies of all
      // parts together cover the whole batch.
      scratch = std::max(
          scratch, ConvScratchpadBytes({part_batch, l.in_h, l.in_w, l.in_c, l.out_c, threads}));
      conv_copies += ConvActivationCopyBytes(
          {static_cast<int>(batch), l.in_h, l.in_w, l.in_c, l.out_c, threads});
      conv_weights += ConvWeightLayoutFloats(l.in_c, l.out_c) + l.out_c;
      ++convs;
    } else if (l.kind == LayerKind::kBatchNorm) {
      other_params += 2 * l.in_c;
    } else if (l.kind == LayerKind::kDense) {
      other_params += static_cast<int64_t>(l.in_c) * l.out_c + l.out_c;
    }
  }
  const int64_t activations = kFloat * batch * (act_floats + 2 * max_act) + batch * side_bytes;
  scratch *= parts;
  // Parameters, gradients, Adam moments (4 arenas), the parts' gradients, weight copies in other
  // layouts for up to three batch sizes (2 each per part), and the best weights with their plain
  // copy.
  const int64_t params = kFloat * ((4 + 6 * parts) * conv_weights + 4 * other_params) +
                         kFloat * (parts - 1) * (conv_weights + other_params) +
                         2 * kFloat * (conv_weights + other_params);
  // 3 primitives per convolution, up to 3 batch sizes, one set per part.
  const int64_t primitives = kPerPrimitive * convs * 3 * 3 * parts;
  const int64_t images = dataset_bytes / std::max<int64_t>(1, in.height * in.width * in.channels);
  const int64_t indices = images * (8 + 8 + 4);  // split, shuffled order, labels
  // Winograd layers keep blocked copies of their activations per batch size (up to three sizes,
  // none above the batch).
  const int64_t variable = activations + params + scratch + primitives + indices + 3 * conv_copies;
  const int64_t pixels = options.dataset_mapped ? 0 : dataset_bytes;
  return kBaseline + pixels + variable + variable / 4;
}

}  // namespace nanonas
