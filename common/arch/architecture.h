// The NanoNAS search space: from a candidate (k, c) and the task's input and classes, the whole
// network with every layer's shapes and channels.
//
// 2023 variant ("paper", the default):
//   input (H, W, C) uint8 -> Rescaling(1/255) -> BatchNorm -> Conv3x3(k)+ReLU
//   -> c x [MaxPool2x2 -> BatchNorm -> Conv3x3(n_i)+ReLU] -> GlobalAvgPool -> Dropout(0.5)
//   -> Dense(classes) -> Softmax
// 2024 variant: no preprocessing; Conv3x3 -> BatchNorm -> ReLU in the first layer and in each cell
//   after the MaxPool: Conv(k)->BN->ReLU -> c x [MaxPool -> Conv(n_i)->BN->ReLU] -> GAP -> ...
//
// Channels: n_0 = k, n_i = ceil(n_{i-1} * m_i), m_1 = 2, m_{i+1} = m_i - 2^-i.
// A cell may be added only while the current spatial size is > 1 (checked before the cell);
// pooling halves with floor (50 -> 25 -> 12 -> 6 -> 3 -> 1).
//
// Thread-safety: plain values and pure functions, safe to call from any thread.
#ifndef NANONAS_COMMON_ARCH_ARCHITECTURE_H_
#define NANONAS_COMMON_ARCH_ARCHITECTURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nanonas {

enum class Variant { k2023 = 0, k2024 = 1 };

// "2023" / "paper" -> k2023, "2024" -> k2024; INVALID_ARGUMENT otherwise.
absl::StatusOr<Variant> ParseVariant(absl::string_view text);
const char* VariantName(Variant v);  // "2023" or "2024"

struct InputShape {
  int height = 0;
  int width = 0;
  int channels = 0;  // 1 (grayscale) or 3 (RGB)
  bool operator==(const InputShape& o) const {
    return height == o.height && width == o.width && channels == o.channels;
  }
};

// Parses "50x50x3" (H x W x C) or "28x28" (C = 1). INVALID_ARGUMENT on anything else.
absl::StatusOr<InputShape> ParseInputShape(absl::string_view text);
std::string FormatInputShape(const InputShape& s);  // "50x50x3"

struct CandidateSpec {
  int k = 1;  // kernels of the first conv
  int c = 0;  // number of cells
  InputShape input;
  int classes = 2;
  Variant variant = Variant::k2023;
};

enum class LayerKind {
  kRescale,    // x / 255 (2023 only)
  kBatchNorm,  // per-channel, training uses batch statistics
  kConv3x3,    // SAME padding, stride 1, bias
  kReLU,
  kMaxPool2x2,  // stride 2, VALID
  kGlobalAvgPool,
  kDropout,  // rate 0.5, training only
  kDense,
  kSoftmax,
};
const char* LayerKindName(LayerKind kind);

// One layer with NHWC shapes (batch excluded).
struct Layer {
  LayerKind kind;
  int in_h, in_w, in_c;
  int out_h, out_w, out_c;
  bool fused_relu = false;  // kConv3x3 in the 2023 variant: Conv + ReLU
  int64_t macc = 0;         // multiply-accumulates of this layer (conv and dense only)
};

struct Architecture {
  CandidateSpec spec;
  std::vector<int> channels;  // n_0 .. n_c: output channels of each conv
  std::vector<Layer> layers;  // in execution order
  int64_t macc = 0;           // convs + dense, preprocessing excluded

  int k() const { return spec.k; }
  int c() const { return spec.c; }
  // Spatial size (H, W) after the last conv, i.e. the input of global average pooling.
  int final_h = 0, final_w = 0;
};

// Channels n_0..n_c for (k, c) (no input check beyond k >= 1, c >= 0).
std::vector<int> CellChannels(int k, int c);

// The largest c for an input: cells are allowed while the spatial size is > 1 before the cell.
// (50x50 -> 5, 28x28 -> 4, 1x1 -> 0.)
int MaxCells(const InputShape& input);

// Checks the spec and builds the architecture. INVALID_ARGUMENT names which field is outside the
// space and why: k < 1, c < 0, c beyond MaxCells, zero-sized input, channels other than 1 or 3,
// fewer than 2 classes.
absl::StatusOr<Architecture> BuildArchitecture(const CandidateSpec& spec);

// "k=4 c=2 (4,8,12) 50x50x3 -> 10 classes, 2023" for logs.
std::string DescribeArchitecture(const Architecture& arch);

}  // namespace nanonas

#endif  // NANONAS_COMMON_ARCH_ARCHITECTURE_H_
