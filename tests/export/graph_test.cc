#include "common/export/graph.h"

#include "common/export/inference.h"
#include "gtest/gtest.h"
#include "tests/export/export_test_util.h"

namespace nanonas {
namespace {

Architecture Arch(int k, int c, InputShape in, int classes, Variant v) {
  CandidateSpec s;
  s.k = k;
  s.c = c;
  s.input = in;
  s.classes = classes;
  s.variant = v;
  auto a = BuildArchitecture(s);
  EXPECT_TRUE(a.ok()) << a.status();
  return *a;
}

std::vector<std::string> OpNames(const Graph& g) {
  std::vector<std::string> names;
  for (const GraphOp& op : g.ops) names.push_back(OpKindName(op.kind));
  return names;
}

TEST(ExportGraphTest, Variant2023HasConverterOpOrder) {
  const Architecture arch = Arch(3, 2, {20, 20, 3}, 4, Variant::k2023);
  auto g = BuildFloatGraph(arch, PlaceholderWeights(arch));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(OpNames(*g),
            (std::vector<std::string>{"MUL", "MUL", "ADD", "CONV_2D", "MAX_POOL_2D", "MUL", "ADD",
                                      "CONV_2D", "MAX_POOL_2D", "MUL", "ADD", "CONV_2D", "MEAN",
                                      "FULLY_CONNECTED", "SOFTMAX"}));
  EXPECT_EQ(g->tensor(g->output).shape, (std::vector<int>{1, 4}));
}

TEST(ExportGraphTest, Variant2024FoldsBatchNormIntoConv) {
  const Architecture arch = Arch(3, 1, {12, 12, 1}, 2, Variant::k2024);
  auto g = BuildFloatGraph(arch, PlaceholderWeights(arch));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(OpNames(*g), (std::vector<std::string>{"CONV_2D", "MAX_POOL_2D", "CONV_2D", "MEAN",
                                                   "FULLY_CONNECTED", "SOFTMAX"}));
  for (const GraphOp& op : g->ops) {
    if (op.kind == OpKind::kConv2D) {
      EXPECT_TRUE(op.fused_relu);
    }
  }
}

// The graph (BatchNorm as MUL+ADD or folded) computes what the layers compute.
TEST(ExportGraphTest, FloatGraphMatchesLayerByLayerReference) {
  for (Variant v : {Variant::k2023, Variant::k2024}) {
    const Architecture arch = Arch(4, 2, {16, 16, 3}, 5, v);
    const ModelWeights w = testing_util::RandomWeights(arch, 11);
    const Dataset d = testing_util::RandomImages(arch.spec.input, 8, 5, 2);
    auto g = BuildFloatGraph(arch, w);
    ASSERT_TRUE(g.ok());
    for (int i = 0; i < d.size(); ++i) {
      auto a = RunFloatGraph(*g, d.image(i));
      auto b = FloatReferenceForward(arch, w, d.image(i));
      ASSERT_TRUE(a.ok() && b.ok());
      ASSERT_EQ(a->size(), 5u);
      for (int c = 0; c < 5; ++c) EXPECT_NEAR((*a)[c], (*b)[c], 1e-4) << VariantName(v);
    }
  }
}

TEST(ExportGraphTest, RejectsWeightsOfAnotherArchitecture) {
  const Architecture arch = Arch(4, 2, {16, 16, 3}, 5, Variant::k2023);
  const Architecture other = Arch(5, 2, {16, 16, 3}, 5, Variant::k2023);
  auto g = BuildFloatGraph(arch, PlaceholderWeights(other));
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(g.status().message().find("conv 0"), std::string::npos) << g.status();

  ModelWeights w = PlaceholderWeights(arch);
  w.dense.bias.pop_back();
  g = BuildFloatGraph(arch, w);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("dense bias"), std::string::npos) << g.status();

  w = PlaceholderWeights(arch);
  w.batch_norms[1].moving_variance[0] = -1.0f;
  EXPECT_FALSE(BuildFloatGraph(arch, w).ok());
}

}  // namespace
}  // namespace nanonas
