#include "common/export/quantize.h"

#include <algorithm>
#include <cmath>

#include "common/export/inference.h"
#include "gtest/gtest.h"
#include "tests/export/export_test_util.h"

namespace nanonas {
namespace {

struct Quantized {
  Architecture arch;
  Graph graph;
};

Quantized Make(int k, int c, InputShape in, int classes, Variant v, uint32_t seed = 5) {
  CandidateSpec s;
  s.k = k;
  s.c = c;
  s.input = in;
  s.classes = classes;
  s.variant = v;
  Quantized q;
  q.arch = *BuildArchitecture(s);
  const Dataset d = testing_util::RandomImages(in, 150, classes, seed);
  auto g =
      QuantizeModel(q.arch, testing_util::RandomWeights(q.arch, seed), d, testing_util::Range(150));
  EXPECT_TRUE(g.ok()) << g.status();
  q.graph = *g;
  return q;
}

const GraphTensor& Out(const Graph& g, const GraphOp& op) { return g.tensor(op.outputs[0]); }
const GraphTensor& In(const Graph& g, const GraphOp& op, int i = 0) {
  return g.tensor(op.inputs[i]);
}

void ExpectConventions(const Graph& g) {
  SCOPED_TRACE(FormatGraph(g));
  ASSERT_TRUE(g.quantized);
  const GraphTensor& input = g.tensor(g.input);
  EXPECT_EQ(input.type, ElementType::kUint8);
  EXPECT_EQ(input.quant.scale, std::vector<float>{1.0f});
  EXPECT_EQ(input.quant.zero_point, std::vector<int64_t>{0});
  const GraphTensor& output = g.tensor(g.output);
  EXPECT_EQ(output.type, ElementType::kUint8);
  EXPECT_EQ(output.quant.scale, std::vector<float>{1.0f / 256});
  EXPECT_EQ(output.quant.zero_point, std::vector<int64_t>{0});
  ASSERT_GE(g.ops.size(), 2u);
  EXPECT_EQ(g.ops.front().kind, OpKind::kQuantize);
  EXPECT_EQ(Out(g, g.ops.front()).type, ElementType::kInt8);
  EXPECT_EQ(Out(g, g.ops.front()).quant.scale, std::vector<float>{1.0f});
  EXPECT_EQ(Out(g, g.ops.front()).quant.zero_point, std::vector<int64_t>{-128});
  EXPECT_EQ(g.ops.back().kind, OpKind::kQuantize);
  for (const GraphOp& op : g.ops) {
    const GraphTensor& out = Out(g, op);
    switch (op.kind) {
      case OpKind::kConv2D: {
        const GraphTensor& w = In(g, op, 1);
        const GraphTensor& b = In(g, op, 2);
        EXPECT_TRUE(op.fused_relu);
        EXPECT_EQ(w.type, ElementType::kInt8);
        EXPECT_EQ(w.quant.quantized_dimension, 0);
        ASSERT_EQ(static_cast<int>(w.quant.scale.size()), w.shape[0]);
        for (int64_t zp : w.quant.zero_point) EXPECT_EQ(zp, 0);
        for (uint8_t byte : w.data) EXPECT_NE(static_cast<int8_t>(byte), -128);  // symmetric
        EXPECT_EQ(b.type, ElementType::kInt32);
        ASSERT_EQ(b.quant.scale.size(), w.quant.scale.size());
        for (size_t c = 0; c < w.quant.scale.size(); ++c) {
          EXPECT_FLOAT_EQ(b.quant.scale[c], In(g, op).quant.scale[0] * w.quant.scale[c]);
          EXPECT_EQ(b.quant.zero_point[c], 0);
        }
        EXPECT_EQ(out.quant.zero_point, std::vector<int64_t>{-128});  // ReLU output
        break;
      }
      case OpKind::kMaxPool2D:
        EXPECT_EQ(out.quant.scale, In(g, op).quant.scale);
        EXPECT_EQ(out.quant.zero_point, In(g, op).quant.zero_point);
        break;
      case OpKind::kMean:
        EXPECT_EQ(out.quant.zero_point, std::vector<int64_t>{-128});
        EXPECT_EQ(out.shape.size(), 2u);
        break;
      case OpKind::kFullyConnected: {
        const GraphTensor& w = In(g, op, 1);
        EXPECT_EQ(w.quant.scale.size(), 1u);
        EXPECT_EQ(w.quant.zero_point, std::vector<int64_t>{0});
        EXPECT_EQ(In(g, op, 2).type, ElementType::kInt32);
        EXPECT_FLOAT_EQ(In(g, op, 2).quant.scale[0], In(g, op).quant.scale[0] * w.quant.scale[0]);
        break;
      }
      case OpKind::kSoftmax:
        EXPECT_EQ(out.type, ElementType::kInt8);
        EXPECT_EQ(out.quant.scale, std::vector<float>{1.0f / 256});
        EXPECT_EQ(out.quant.zero_point, std::vector<int64_t>{-128});
        break;
      case OpKind::kMul:
      case OpKind::kAdd:
        EXPECT_EQ(In(g, op, 1).type, ElementType::kInt8);
        EXPECT_TRUE(In(g, op, 1).constant);
        EXPECT_EQ(In(g, op, 1).quant.scale.size(), 1u);
        EXPECT_EQ(out.type, ElementType::kInt8);
        break;
      case OpKind::kQuantize:
        break;
    }
  }
}

TEST(ExportQuantizeTest, Variant2023FollowsConverterConventions) {
  const Quantized q = Make(3, 2, {24, 24, 3}, 4, Variant::k2023);
  ExpectConventions(q.graph);
  EXPECT_EQ(static_cast<int>(q.graph.ops.size()), 4 * 2 + 9);
  EXPECT_EQ(static_cast<int>(q.graph.tensors.size()), 8 * 2 + 18);
  // The 1/255 rescale: a scalar int8 constant (scale (1/255)/255, zero point -128, value 127) and
  // an output in [0, 1] (scale 1/255, zero point -128).
  const GraphOp& rescale = q.graph.ops[1];
  ASSERT_EQ(rescale.kind, OpKind::kMul);
  const GraphTensor& c = In(q.graph, rescale, 1);
  EXPECT_TRUE(c.shape.empty());
  EXPECT_EQ(c.quant.zero_point, std::vector<int64_t>{-128});
  EXPECT_NEAR(c.quant.scale[0], 1.0 / 255 / 255, 1e-9);
  EXPECT_EQ(static_cast<int8_t>(c.data[0]), 127);
  EXPECT_EQ(Out(q.graph, rescale).quant.zero_point, std::vector<int64_t>{-128});
  EXPECT_NEAR(Out(q.graph, rescale).quant.scale[0], 1.0 / 255, 1e-4);
  // The input BatchNorm: per-channel vectors [C] for MUL and ADD.
  EXPECT_EQ(In(q.graph, q.graph.ops[2], 1).shape, std::vector<int>{3});
  EXPECT_EQ(In(q.graph, q.graph.ops[3], 1).shape, std::vector<int>{3});
}

TEST(ExportQuantizeTest, Variant2024FollowsConverterConventions) {
  const Quantized q = Make(4, 3, {28, 28, 1}, 10, Variant::k2024);
  ExpectConventions(q.graph);
  EXPECT_EQ(static_cast<int>(q.graph.ops.size()), 2 * 3 + 6);
  EXPECT_EQ(static_cast<int>(q.graph.tensors.size()), 4 * 3 + 12);
}

TEST(ExportQuantizeTest, NeedsEnoughRepresentativeImages) {
  CandidateSpec s;
  s.k = 2;
  s.c = 1;
  s.input = {10, 10, 3};
  const Architecture arch = *BuildArchitecture(s);
  const Dataset d = testing_util::RandomImages(s.input, 149, 2, 1);
  auto g = QuantizeModel(arch, testing_util::RandomWeights(arch, 1), d, testing_util::Range(149));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("150"), std::string::npos);
  // Wrong image size.
  const Dataset other = testing_util::RandomImages({12, 12, 3}, 150, 2, 1);
  g = QuantizeModel(arch, testing_util::RandomWeights(arch, 1), other, testing_util::Range(150));
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("12x12x3"), std::string::npos) << g.status();
  // Index out of range.
  std::vector<int64_t> idx = testing_util::Range(150);
  idx[3] = 1000;
  g = QuantizeModel(arch, testing_util::RandomWeights(arch, 1),
                    testing_util::RandomImages(s.input, 150, 2, 1), idx);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("1000"), std::string::npos) << g.status();
}

TEST(ExportQuantizeTest, AsymmetricParamsContainZero) {
  float scale;
  int32_t zp;
  AsymmetricParams(0.0f, 255.0f, &scale, &zp);
  EXPECT_FLOAT_EQ(scale, 1.0f);
  EXPECT_EQ(zp, -128);
  AsymmetricParams(0.5f, 2.0f, &scale, &zp);  // extended to [0, 2]
  EXPECT_FLOAT_EQ(scale, 2.0f / 255);
  EXPECT_EQ(zp, -128);
  AsymmetricParams(-3.0f, -1.0f, &scale, &zp);  // extended to [-3, 0]
  EXPECT_EQ(zp, 127);
  AsymmetricParams(-1.0f, 1.0f, &scale, &zp);
  EXPECT_TRUE(zp == 0 || zp == -1) << zp;
  AsymmetricParams(0.0f, 0.0f, &scale, &zp);  // a dead ReLU still gets a usable scale
  EXPECT_GT(scale, 0.0f);
  EXPECT_EQ(zp, -128);
}

TEST(ExportQuantizeTest, WeightsRoundTripWithinHalfAStep) {
  const Quantized q = Make(5, 1, {12, 12, 3}, 3, Variant::k2023);
  auto fg = BuildFloatGraph(q.arch, testing_util::RandomWeights(q.arch, 5));
  ASSERT_TRUE(fg.ok());
  for (size_t i = 0; i < fg->tensors.size(); ++i) {
    const GraphTensor& f = fg->tensors[i];
    const GraphTensor& t =
        q.graph.tensors[i + 1];  // the quantized graph keeps the order after its input
    ASSERT_EQ(f.name == "input" ? "input_i8" : f.name, t.name);
    if (!f.constant || t.type != ElementType::kInt8) continue;
    const int per = static_cast<int>(f.values.size() / t.quant.scale.size());
    for (size_t j = 0; j < f.values.size(); ++j) {
      const float s = t.quant.scale[j / per];
      const float real = s * (static_cast<int8_t>(t.data[j]) - t.quant.zero_point[j / per]);
      EXPECT_NEAR(real, f.values[j], s * 0.5001f) << t.name;
    }
  }
}

// The logits' range: the converter's min/max with logit_span 0, else it starts logit_span below
// the lowest top logit of any calibration image (when that is above the minimum).
TEST(ExportQuantizeTest, LogitRangeStartsBelowTheLowestTopLogit) {
  CandidateSpec s;
  s.k = 6;
  s.c = 3;
  s.input = {28, 28, 1};
  s.classes = 10;
  const Architecture arch = *BuildArchitecture(s);
  const ModelWeights w = testing_util::RandomWeights(arch, 106);
  const Dataset d = testing_util::RandomImages(s.input, 150, 10, 1);
  auto fg = BuildFloatGraph(arch, w);
  ASSERT_TRUE(fg.ok());
  auto ranges = Calibrate(*fg, d, testing_util::Range(150));
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  int logits = -1;
  for (const GraphOp& op : fg->ops) {
    if (op.kind == OpKind::kFullyConnected) logits = op.outputs[0];
  }
  ASSERT_GE(logits, 0);
  const float lowest_top = ranges->min_image_max[logits];
  ASSERT_GT(lowest_top - 12.0f, ranges->min[logits]) << "the case must exercise the cut";
  auto low_end = [&](const QuantizeOptions& o) {
    auto q = QuantizeGraph(*fg, *ranges, o);
    EXPECT_TRUE(q.ok()) << q.status();
    const GraphTensor& t = q->tensor(logits + 1);
    return t.quant.scale[0] * (-128 - t.quant.zero_point[0]);
  };
  QuantizeOptions converter;
  converter.logit_span = 0;
  EXPECT_NEAR(low_end(converter), ranges->min[logits],
              0.02f * (ranges->max[logits] - ranges->min[logits]));
  const QuantizeOptions cut;
  EXPECT_NEAR(low_end(cut), lowest_top - 12.0f, 0.02f * (ranges->max[logits] - lowest_top + 12.0f));
  // The top still fits.
  auto q = QuantizeGraph(*fg, *ranges, cut);
  const GraphTensor& t = q->tensor(logits + 1);
  EXPECT_GE(t.quant.scale[0] * (127 - t.quant.zero_point[0]), ranges->max[logits] * 0.99f);
}

// Equalization moves per-channel factors between ops: the float function stays, the graph's
// ops, tensors and shapes stay, and the channels of each cell's conv output become balanced.
TEST(ExportQuantizeTest, EqualizeChannelsKeepsTheFunction) {
  CandidateSpec s;
  s.k = 4;
  s.c = 2;
  s.input = {16, 16, 3};
  s.classes = 5;
  const Architecture arch = *BuildArchitecture(s);
  ModelWeights w = testing_util::RandomWeights(arch, 3);
  // An unbalanced cell: conv0's channel 0 twenty times larger than the others.
  const size_t per = w.convs[0].kernel.size() / w.convs[0].out_channels;
  for (size_t j = 0; j < per; ++j) w.convs[0].kernel[j] *= 20.0f;
  w.convs[0].bias[0] *= 20.0f;
  const Dataset d = testing_util::RandomImages(s.input, 150, 5, 2);
  auto fg = BuildFloatGraph(arch, w);
  ASSERT_TRUE(fg.ok());
  auto ranges = Calibrate(*fg, d, testing_util::Range(150));
  ASSERT_TRUE(ranges.ok());
  auto eq = EqualizeChannels(*fg, *ranges);
  ASSERT_TRUE(eq.ok()) << eq.status();
  ASSERT_EQ(eq->ops.size(), fg->ops.size());
  ASSERT_EQ(eq->tensors.size(), fg->tensors.size());
  for (size_t t = 0; t < fg->tensors.size(); ++t)
    EXPECT_EQ(eq->tensors[t].shape, fg->tensors[t].shape);
  for (int i = 0; i < 10; ++i) {
    auto a = RunFloatGraph(*fg, d.image(i));
    auto b = RunFloatGraph(*eq, d.image(i));
    ASSERT_TRUE(a.ok() && b.ok());
    for (size_t c = 0; c < a->size(); ++c) EXPECT_NEAR((*a)[c], (*b)[c], 1e-4f);
  }
  auto spread = [](const CalibrationRanges& r, int t) {
    float lo = 1e30f, hi = 0;
    for (size_t c = 0; c < r.channel_max[t].size(); ++c) {
      if (r.channel_max[t][c] <= 0) continue;
      lo = std::min(lo, r.channel_max[t][c]);
      hi = std::max(hi, r.channel_max[t][c]);
    }
    return hi / lo;
  };
  auto after = Calibrate(*eq, d, testing_util::Range(150));
  ASSERT_TRUE(after.ok());
  const int conv0 = fg->ops[3].outputs[0];
  ASSERT_EQ(fg->ops[3].kind, OpKind::kConv2D);
  EXPECT_GT(spread(*ranges, conv0), 10.0f);
  EXPECT_LT(spread(*after, conv0), spread(*ranges, conv0) / 3);
  // Missing per-channel ranges are an error.
  CalibrationRanges bare;
  bare.min = ranges->min;
  bare.max = ranges->max;
  EXPECT_EQ(EqualizeChannels(*fg, bare).status().code(), absl::StatusCode::kInvalidArgument);
  // QuantizeModel with equalization follows the conventions too.
  QuantizeOptions o;
  o.equalize = true;
  auto q = QuantizeModel(arch, w, d, testing_util::Range(150), kMinRepresentativeImages, o);
  ASSERT_TRUE(q.ok()) << q.status();
  ExpectConventions(*q);
}

}  // namespace
}  // namespace nanonas
