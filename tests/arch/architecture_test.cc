#include "common/arch/architecture.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

CandidateSpec Spec(int k, int c, InputShape in = {50, 50, 3}, int classes = 2,
                   Variant v = Variant::k2023) {
  CandidateSpec s;
  s.k = k;
  s.c = c;
  s.input = in;
  s.classes = classes;
  s.variant = v;
  return s;
}

TEST(ArchitectureTest, ChannelHeuristicMatchesPublishedModels) {
  EXPECT_THAT(CellChannels(3, 4), ElementsAre(3, 6, 9, 12, 14));
  EXPECT_THAT(CellChannels(6, 4), ElementsAre(6, 12, 18, 23, 26));
  EXPECT_THAT(CellChannels(10, 4), ElementsAre(10, 20, 30, 38, 43));
  EXPECT_THAT(CellChannels(14, 4), ElementsAre(14, 28, 42, 53, 60));
  EXPECT_THAT(CellChannels(7, 4), ElementsAre(7, 14, 21, 27, 31));
  EXPECT_THAT(CellChannels(5, 0), ElementsAre(5));
}

TEST(ArchitectureTest, CellLimitFollowsSpatialSize) {
  EXPECT_EQ(MaxCells({50, 50, 3}), 5);  // 50 -> 25 -> 12 -> 6 -> 3 -> 1
  EXPECT_EQ(MaxCells({28, 28, 1}), 4);  // 28 -> 14 -> 7 -> 3 -> 1
  EXPECT_EQ(MaxCells({1, 1, 1}), 0);
  EXPECT_EQ(MaxCells({2, 2, 1}), 1);
  EXPECT_EQ(MaxCells({64, 3, 1}), 1);  // the smaller side limits
}

TEST(ArchitectureTest, Builds2023LayerSequenceWithShapes) {
  auto arch = BuildArchitecture(Spec(3, 2, {50, 50, 3}, 10));
  ASSERT_TRUE(arch.ok()) << arch.status();
  std::vector<LayerKind> kinds;
  for (const Layer& l : arch->layers) kinds.push_back(l.kind);
  EXPECT_THAT(kinds, ElementsAre(LayerKind::kRescale, LayerKind::kBatchNorm, LayerKind::kConv3x3,
                                 LayerKind::kMaxPool2x2, LayerKind::kBatchNorm, LayerKind::kConv3x3,
                                 LayerKind::kMaxPool2x2, LayerKind::kBatchNorm, LayerKind::kConv3x3,
                                 LayerKind::kGlobalAvgPool, LayerKind::kDropout, LayerKind::kDense,
                                 LayerKind::kSoftmax));
  EXPECT_EQ(arch->final_h, 12);
  EXPECT_EQ(arch->layers[5].in_c, 3);  // cell 1's conv: 3 -> 6 channels at 25x25
  EXPECT_EQ(arch->layers[5].out_c, 6);
  EXPECT_EQ(arch->layers[5].out_h, 25);
  EXPECT_EQ(arch->layers[8].in_c, 6);  // cell 2's conv: 6 -> 9 channels at 12x12
  EXPECT_EQ(arch->layers[8].out_c, 9);
  EXPECT_EQ(arch->layers[8].out_h, 12);
  EXPECT_TRUE(arch->layers[2].fused_relu);
  // MACC: 3*9*50*50*3 + 3*9*25*25*6 + 6*9*12*12*9 + 9*10.
  EXPECT_EQ(arch->macc, 3 * 9 * 2500 * 3 + 3 * 9 * 625 * 6 + 6 * 9 * 144 * 9 + 9 * 10);
}

TEST(ArchitectureTest, Builds2024VariantWithoutPreprocessing) {
  auto arch = BuildArchitecture(Spec(2, 1, {28, 28, 1}, 10, Variant::k2024));
  ASSERT_TRUE(arch.ok()) << arch.status();
  std::vector<LayerKind> kinds;
  for (const Layer& l : arch->layers) kinds.push_back(l.kind);
  EXPECT_THAT(kinds, ElementsAre(LayerKind::kConv3x3, LayerKind::kBatchNorm, LayerKind::kReLU,
                                 LayerKind::kMaxPool2x2, LayerKind::kConv3x3, LayerKind::kBatchNorm,
                                 LayerKind::kReLU, LayerKind::kGlobalAvgPool, LayerKind::kDropout,
                                 LayerKind::kDense, LayerKind::kSoftmax));
  EXPECT_FALSE(arch->layers[0].fused_relu);
}

TEST(ArchitectureTest, RejectsRequestsOutsideTheSpaceSayingWhy) {
  struct Case {
    CandidateSpec spec;
    const char* message;
  } cases[] = {
      {Spec(0, 0), "k >= 1"},
      {Spec(1, -1), "c >= 0"},
      {Spec(1, 6), "at most 5 cells"},
      {Spec(1, 0, {0, 0, 3}), "is empty"},
      {Spec(1, 0, {28, 28, 2}), "only 1 (grayscale) or 3 (RGB)"},
      {Spec(1, 0, {28, 28, 1}, 1), "at least 2 classes"},
  };
  for (const Case& c : cases) {
    auto arch = BuildArchitecture(c.spec);
    ASSERT_FALSE(arch.ok());
    EXPECT_EQ(arch.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(arch.status().message()), HasSubstr(c.message));
  }
}

TEST(ArchitectureTest, ParsesShapesAndVariants) {
  auto s = ParseInputShape("50x50x3");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, (InputShape{50, 50, 3}));
  EXPECT_EQ(*ParseInputShape("28x28"), (InputShape{28, 28, 1}));
  EXPECT_FALSE(ParseInputShape("50x").ok());
  EXPECT_FALSE(ParseInputShape("axbxc").ok());
  EXPECT_EQ(*ParseVariant("2024"), Variant::k2024);
  EXPECT_EQ(*ParseVariant("paper"), Variant::k2023);
  EXPECT_EQ(ParseVariant("2025").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nanonas
