#include "common/export/inference.h"

#include <cmath>

#include "common/export/quantize.h"
#include "gtest/gtest.h"
#include "tests/export/export_test_util.h"

namespace nanonas {
namespace {

struct Case {
  int k, c;
  InputShape in;
  int classes;
  Variant variant;
};

// Integer inference agrees with float inference of the same model on >= 95% of predictions, and
// the probabilities are close (random weights, see export_test_util.h).
TEST(ExportInferenceTest, IntegerAgreesWithFloatOnArgmax) {
  const std::vector<Case> cases = {
      {3, 2, {24, 24, 3}, 4, Variant::k2023}, {6, 3, {28, 28, 1}, 10, Variant::k2023},
      {2, 0, {9, 9, 3}, 2, Variant::k2023},   {4, 4, {50, 50, 3}, 3, Variant::k2023},
      {3, 2, {24, 24, 3}, 4, Variant::k2024}, {8, 3, {28, 28, 1}, 10, Variant::k2024},
      {5, 1, {16, 16, 3}, 2, Variant::k2024},
  };
  for (const Case& tc : cases) {
    CandidateSpec s;
    s.k = tc.k;
    s.c = tc.c;
    s.input = tc.in;
    s.classes = tc.classes;
    s.variant = tc.variant;
    const Architecture arch = *BuildArchitecture(s);
    SCOPED_TRACE(DescribeArchitecture(arch));
    const ModelWeights w = testing_util::RandomWeights(arch, 100 + tc.k);
    const Dataset calib = testing_util::RandomImages(tc.in, 150, tc.classes, 1);
    const Dataset test = testing_util::RandomImages(tc.in, 200, tc.classes, 2);
    // The converter's min/max ranges (logit_span 0) and the exporter's default (the logit range
    // cut at 12 below the lowest calibrated top logit, common/export/quantize.h).
    QuantizeOptions converter;
    converter.logit_span = 0;
    auto q_minmax = QuantizeModel(arch, w, calib, testing_util::Range(150),
                                  kMinRepresentativeImages, converter);
    ASSERT_TRUE(q_minmax.ok()) << q_minmax.status();
    auto q = QuantizeModel(arch, w, calib, testing_util::Range(150));
    ASSERT_TRUE(q.ok()) << q.status();
    auto f = BuildFloatGraph(arch, w);
    ASSERT_TRUE(f.ok());
    int strict_minmax = 0;
    for (const Graph* g : {&*q_minmax, &*q}) {
      int agree = 0, strict = 0;
      double sum_diff = 0;
      for (int i = 0; i < test.size(); ++i) {
        auto qi = RunIntegerGraph(*g, test.image(i));
        auto fi = RunFloatGraph(*f, test.image(i));
        ASSERT_TRUE(qi.ok() && fi.ok());
        // Agreement: the float prediction has the largest quantized probability (the uint8 output
        // cannot order classes whose int8 logits are equal; numpy's argmax would take the first).
        if ((*qi)[Argmax(*fi)] == (*qi)[Argmax(*qi)]) ++agree;
        // Strict: numpy's argmax (first of equal values) as QuantizedAccuracy scores.
        if (Argmax(*qi) == Argmax(*fi)) ++strict;
        for (int c = 0; c < tc.classes; ++c) {
          sum_diff += std::fabs((*qi)[c] / 256.0 - (*fi)[c]);
        }
      }
      const double mean_diff = sum_diff / (test.size() * tc.classes);
      EXPECT_LT(mean_diff, 0.02) << "mean |p_int - p_float|";
      if (g == &*q_minmax) {
        EXPECT_GE(agree, 190) << "of 200";
        strict_minmax = strict;
      } else {
        // Finer logits leave fewer equal int8 logits, so the tie-tolerant count can drop (191 ->
        // 187 for k=6 c=3) while the predictions themselves agree more often.
        EXPECT_GE(strict, strict_minmax) << "of 200";
        EXPECT_GE(strict, 180) << "of 200";
      }
    }
  }
}

TEST(ExportInferenceTest, SoftmaxOutputIsADistribution) {
  CandidateSpec s;
  s.k = 4;
  s.c = 2;
  s.input = {20, 20, 3};
  s.classes = 6;
  const Architecture arch = *BuildArchitecture(s);
  const Dataset d = testing_util::RandomImages(s.input, 150, 6, 9);
  auto q = QuantizeModel(arch, testing_util::RandomWeights(arch, 9), d, testing_util::Range(150));
  ASSERT_TRUE(q.ok());
  for (int i = 0; i < 20; ++i) {
    auto out = RunIntegerGraph(*q, d.image(i));
    ASSERT_TRUE(out.ok());
    int sum = 0;
    for (uint8_t v : *out) sum += v;
    EXPECT_NEAR(sum, 256, 6);
  }
}

TEST(ExportInferenceTest, QuantizedAccuracyCountsArgmaxHits) {
  CandidateSpec s;
  s.k = 2;
  s.c = 1;
  s.input = {10, 10, 1};
  s.classes = 3;
  const Architecture arch = *BuildArchitecture(s);
  Dataset d = testing_util::RandomImages(s.input, 150, 3, 4);
  auto q = QuantizeModel(arch, testing_util::RandomWeights(arch, 4), d, testing_util::Range(150));
  ASSERT_TRUE(q.ok());
  // Relabel every image with the model's own prediction: accuracy 1; then shift labels: 0.
  for (int i = 0; i < d.size(); ++i) d.labels[i] = Argmax(*RunIntegerGraph(*q, d.image(i)));
  EXPECT_DOUBLE_EQ(*QuantizedAccuracy(*q, d, testing_util::Range(150)), 1.0);
  for (int i = 0; i < d.size(); ++i) d.labels[i] = (d.labels[i] + 1) % 3;
  EXPECT_DOUBLE_EQ(*QuantizedAccuracy(*q, d, {0, 1, 2, 3}), 0.0);
  EXPECT_EQ(QuantizedAccuracy(*q, d, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(QuantizedAccuracy(*q, d, {150}).status().code(), absl::StatusCode::kInvalidArgument);
  auto f = BuildFloatGraph(arch, testing_util::RandomWeights(arch, 4));
  EXPECT_GE(*FloatAccuracy(*f, d, testing_util::Range(150)), 0.0);
  // The float and integer interpreters refuse the other kind of graph.
  EXPECT_EQ(RunIntegerGraph(*f, d.image(0)).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RunFloatGraph(*q, d.image(0)).status().code(), absl::StatusCode::kFailedPrecondition);
}

// MEAN keeps TFLM's plain integer average (truncating division) when input and output share
// their parameters.
TEST(ExportInferenceTest, MeanWithSharedParamsTruncates) {
  CandidateSpec s;
  s.k = 1;
  s.c = 0;
  s.input = {2, 2, 1};
  s.classes = 2;
  const Architecture arch = *BuildArchitecture(s);
  auto q = PlaceholderQuantizedGraph(arch);
  ASSERT_TRUE(q.ok());
  Graph g = *q;
  for (GraphOp& op : g.ops) {
    if (op.kind != OpKind::kMean) continue;
    g.tensors[op.outputs[0]].quant = g.tensors[op.inputs[0]].quant;
  }
  std::vector<std::vector<int32_t>> raw;
  const uint8_t image[4] = {0, 0, 0, 0};
  ASSERT_TRUE(RunIntegerGraph(g, image, &raw).ok());
  for (const GraphOp& op : g.ops) {
    if (op.kind != OpKind::kMean) continue;
    const auto& in = raw[op.inputs[0]];
    int32_t sum = 0;
    for (int32_t v : in) sum += v;
    EXPECT_EQ(raw[op.outputs[0]][0], sum / 4);
  }
}

}  // namespace
}  // namespace nanonas
