#include "common/arch/architecture.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace nanonas {

absl::StatusOr<Variant> ParseVariant(absl::string_view text) {
  if (text == "2023" || text == "paper" || text.empty()) return Variant::k2023;
  if (text == "2024") return Variant::k2024;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown search-space variant '", text, "' (use 2023 or 2024)"));
}

const char* VariantName(Variant v) { return v == Variant::k2024 ? "2024" : "2023"; }

absl::StatusOr<InputShape> ParseInputShape(absl::string_view text) {
  std::vector<std::string> parts = absl::StrSplit(text, 'x');
  InputShape s;
  int values[3] = {0, 0, 1};
  if (parts.size() != 2 && parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("input shape '", text, "' must be HxWxC (e.g. 50x50x3) or HxW"));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!absl::SimpleAtoi(parts[i], &values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("input shape '", text, "': '", parts[i], "' is not a whole number"));
    }
  }
  s.height = values[0];
  s.width = values[1];
  s.channels = values[2];
  return s;
}

std::string FormatInputShape(const InputShape& s) {
  return absl::StrCat(s.height, "x", s.width, "x", s.channels);
}

const char* LayerKindName(LayerKind kind) {
  switch (kind) {
    case LayerKind::kRescale:
      return "Rescale";
    case LayerKind::kBatchNorm:
      return "BatchNorm";
    case LayerKind::kConv3x3:
      return "Conv3x3";
    case LayerKind::kReLU:
      return "ReLU";
    case LayerKind::kMaxPool2x2:
      return "MaxPool2x2";
    case LayerKind::kGlobalAvgPool:
      return "GlobalAvgPool";
    case LayerKind::kDropout:
      return "Dropout";
    case LayerKind::kDense:
      return "Dense";
    case LayerKind::kSoftmax:
      return "Softmax";
  }
  return "?";
}

std::vector<int> CellChannels(int k, int c) {
  std::vector<int> n = {k};
  double m = 2.0;
  for (int i = 1; i <= c; ++i) {
    // n_i = ceil(n_{i-1} * m_i); m is exact in binary floating point (2, 1.5, 1.25, ...).
    n.push_back(static_cast<int>(std::ceil(n.back() * m)));
    m -= std::ldexp(1.0, -i);
  }
  return n;
}

int MaxCells(const InputShape& input) {
  int h = input.height, w = input.width, c = 0;
  // A cell pools first; it is allowed while the spatial size before it is > 1.
  while (h > 1 && w > 1) {
    h /= 2;
    w /= 2;
    ++c;
  }
  return c;
}

absl::StatusOr<Architecture> BuildArchitecture(const CandidateSpec& spec) {
  const InputShape& in = spec.input;
  if (in.height <= 0 || in.width <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("input size ", in.height, "x", in.width,
                                                   " is empty: height and width must be >= 1"));
  }
  if (in.channels != 1 && in.channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input has ", in.channels, " channels: only 1 (grayscale) or 3 (RGB) are supported"));
  }
  if (spec.classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("a classifier needs at least 2 classes, got ", spec.classes));
  }
  if (spec.k < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "k=", spec.k, " is outside the search space: the first conv needs k >= 1 kernels"));
  }
  if (spec.c < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("c=", spec.c, " is outside the search space: c >= 0"));
  }
  const int max_cells = MaxCells(in);
  if (spec.c > max_cells) {
    return absl::InvalidArgumentError(absl::StrCat(
        "c=", spec.c, " is outside the search space for a ", in.height, "x", in.width,
        " input: at most ", max_cells,
        " cells fit (each cell halves the spatial size and needs it > 1 before pooling)"));
  }

  Architecture arch;
  arch.spec = spec;
  arch.channels = CellChannels(spec.k, spec.c);
  const bool v2023 = spec.variant == Variant::k2023;
  int h = in.height, w = in.width, ch = in.channels;

  auto add = [&](LayerKind kind, int oh, int ow, int oc) -> Layer& {
    arch.layers.push_back(Layer{kind, h, w, ch, oh, ow, oc});
    h = oh;
    w = ow;
    ch = oc;
    return arch.layers.back();
  };
  auto conv = [&](int out_c) {
    const int cin = ch;
    Layer& l = add(LayerKind::kConv3x3, h, w, out_c);
    l.fused_relu = v2023;
    l.macc = static_cast<int64_t>(cin) * 9 * l.out_h * l.out_w * out_c;
    arch.macc += l.macc;
    if (!v2023) {
      add(LayerKind::kBatchNorm, h, w, ch);
      add(LayerKind::kReLU, h, w, ch);
    }
  };

  if (v2023) {
    add(LayerKind::kRescale, h, w, ch);
    add(LayerKind::kBatchNorm, h, w, ch);
  }
  conv(arch.channels[0]);
  for (int i = 1; i <= spec.c; ++i) {
    add(LayerKind::kMaxPool2x2, h / 2, w / 2, ch);
    if (v2023) add(LayerKind::kBatchNorm, h, w, ch);
    conv(arch.channels[i]);
  }
  arch.final_h = h;
  arch.final_w = w;
  add(LayerKind::kGlobalAvgPool, 1, 1, ch);
  add(LayerKind::kDropout, 1, 1, ch);
  Layer& dense = add(LayerKind::kDense, 1, 1, spec.classes);
  dense.macc = static_cast<int64_t>(dense.in_c) * spec.classes;
  arch.macc += dense.macc;
  add(LayerKind::kSoftmax, 1, 1, spec.classes);
  return arch;
}

std::string DescribeArchitecture(const Architecture& arch) {
  return absl::StrCat("k=", arch.spec.k, " c=", arch.spec.c, " (",
                      absl::StrJoin(arch.channels, ","), ") ", FormatInputShape(arch.spec.input),
                      " -> ", arch.spec.classes, " classes, ", VariantName(arch.spec.variant));
}

}  // namespace nanonas
