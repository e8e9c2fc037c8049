// Evaluate/Train/Predict end to end on a generated stripes data set.
#include "worker/engine/trainer.h"

#include <cmath>

#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "worker/engine/reference.h"

namespace nanonas {
namespace {

using engine::testing::HeadSplit;
using engine::testing::MakeStripes;

Architecture MakeArch(int k, int c, InputShape in, Variant v = Variant::k2023, int classes = 2) {
  CandidateSpec spec;
  spec.k = k;
  spec.c = c;
  spec.input = in;
  spec.classes = classes;
  spec.variant = v;
  auto arch = BuildArchitecture(spec);
  EXPECT_TRUE(arch.ok()) << arch.status();
  return *arch;
}

// Validation runs with the BatchNorm moving statistics (momentum 0.99, as Keras), which lag the
// batch statistics for the first ~100 steps: with 400 images (54 steps in 3 epochs) validation
// stays at chance although training learns. 1000 images give 132 steps.
struct LearningCase {
  Variant variant;
  int epochs;
};
class LearningTest : public ::testing::TestWithParam<LearningCase> {};

TEST_P(LearningTest, TwoOneCandidateLearnsStripes) {
  const Dataset data = MakeStripes(1000, 16, 16, 3, 1);
  const Split split = HeadSplit(data, 700);
  const Architecture arch = MakeArch(2, 1, {16, 16, 3}, GetParam().variant);
  TrainOptions opt;  // defaults: Adam 1e-3, batch 16
  opt.epochs = GetParam().epochs;
  std::vector<Progress> seen;
  auto r = Evaluate(arch, data, split, opt, [&](const Progress& p) { seen.push_back(p); });
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->epochs.size(), static_cast<size_t>(opt.epochs));
  for (const EpochStats& e : r->epochs) {
    std::printf("epoch %d loss %.4f acc %.4f val_loss %.4f val_acc %.4f (%.3f s)\n", e.epoch,
                e.train_loss, e.train_accuracy, e.validation_loss, e.validation_accuracy,
                e.seconds);
  }
  EXPECT_GE(r->best_validation_accuracy, 0.95);
  EXPECT_LT(r->epochs.back().train_loss, r->epochs.front().train_loss);
  EXPECT_GT(r->train_images_per_second, 0);
  double best = 0;
  int best_epoch = 0;
  for (const EpochStats& e : r->epochs) {
    if (e.validation_accuracy > best) best = e.validation_accuracy, best_epoch = e.epoch;
  }
  EXPECT_EQ(r->best_validation_accuracy, best);
  EXPECT_EQ(r->best_epoch, best_epoch);
  EXPECT_FALSE(r->best_weights.has_value());
  // Progress: 44 batches per epoch and the default cadence (100): only epoch reports.
  ASSERT_EQ(seen.size(), static_cast<size_t>(opt.epochs));
  EXPECT_EQ(seen.back().kind, Progress::Kind::kEpoch);
  EXPECT_EQ(seen.back().batches_per_epoch, 44);
  EXPECT_EQ(seen.back().epoch_stats.validation_accuracy, r->epochs.back().validation_accuracy);
}

// The paper's (default) variant in the 3 epochs of a search evaluation; the 2024 variant (no
// input normalisation: its first BatchNorm sees raw 0..255 convolutions) needs 5.
INSTANTIATE_TEST_SUITE_P(Variants, LearningTest,
                         ::testing::Values(LearningCase{Variant::k2023, 3},
                                           LearningCase{Variant::k2024, 5}));

TEST(TrainerTest, SameSeedGivesIdenticalResultsAndAnotherSeedDiffers) {
  const Dataset data = MakeStripes(200, 12, 12, 1, 2);
  const Split split = HeadSplit(data, 150);
  const Architecture arch = MakeArch(4, 2, {12, 12, 1});
  TrainOptions opt;
  opt.epochs = 2;
  opt.batch_size = 16;  // 150 = 9 x 16 + 6: the partial batch is trained on
  opt.seed = 5;
  auto a = Evaluate(arch, data, split, opt);
  auto b = Evaluate(arch, data, split, opt);
  opt.seed = 6;
  auto c = Evaluate(arch, data, split, opt);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  bool any_difference = false;
  for (int e = 0; e < 2; ++e) {
    EXPECT_EQ(a->epochs[e].train_loss, b->epochs[e].train_loss);
    EXPECT_EQ(a->epochs[e].train_accuracy, b->epochs[e].train_accuracy);
    EXPECT_EQ(a->epochs[e].validation_loss, b->epochs[e].validation_loss);
    EXPECT_EQ(a->epochs[e].validation_accuracy, b->epochs[e].validation_accuracy);
    any_difference |= a->epochs[e].train_loss != c->epochs[e].train_loss;
  }
  EXPECT_TRUE(any_difference);
}

TEST(TrainerTest, TwoThreadsAreReproducibleAndCloseToOneThread) {
  const Dataset data = MakeStripes(200, 24, 24, 3, 7);
  const Split split = HeadSplit(data, 150);
  const Architecture arch = MakeArch(8, 2, {24, 24, 3});
  TrainOptions opt;
  opt.epochs = 1;
  opt.threads = 2;
  auto a = Evaluate(arch, data, split, opt);
  auto b = Evaluate(arch, data, split, opt);
  opt.threads = 1;
  auto c = Evaluate(arch, data, split, opt);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->epochs[0].train_loss, b->epochs[0].train_loss);
  EXPECT_EQ(a->epochs[0].validation_loss, b->epochs[0].validation_loss);
  // Different summation orders only: the same training up to float rounding.
  EXPECT_NEAR(a->epochs[0].train_loss, c->epochs[0].train_loss, 1e-3);
  EXPECT_NEAR(a->epochs[0].validation_loss, c->epochs[0].validation_loss, 1e-3);
}

TEST(TrainerTest, CancellationBetweenBatchesReturnsCancelled) {
  const Dataset data = MakeStripes(200, 12, 12, 3, 3);
  const Split split = HeadSplit(data, 160);
  const Architecture arch = MakeArch(2, 1, {12, 12, 3});
  TrainOptions opt;
  opt.progress_every_batches = 2;
  CancelFlag cancel;
  int batch_reports = 0;
  auto r = Evaluate(
      arch, data, split, opt,
      [&](const Progress& p) {
        if (p.kind == Progress::Kind::kBatch) {
          EXPECT_EQ(p.batch % 2, 0);
          EXPECT_EQ(p.batches_per_epoch, 10);
          EXPECT_GT(p.running_loss, 0);
          if (++batch_reports == 3) cancel.Cancel();
        }
      },
      &cancel);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(batch_reports, 3);

  CancelFlag already;
  already.Cancel();
  EXPECT_EQ(Evaluate(arch, data, split, opt, nullptr, &already).status().code(),
            absl::StatusCode::kCancelled);
}

TEST(TrainerTest, TrainKeepsBestWeightsWhosePredictionsGiveTheBestAccuracy) {
  const Dataset data = MakeStripes(600, 16, 16, 3, 4);
  const Split split = HeadSplit(data, 420);
  const Architecture arch = MakeArch(2, 1, {16, 16, 3});
  TrainOptions opt;
  opt.epochs = 6;
  opt.learning_rate = 0.01f;
  opt.batch_size = 16;
  auto r = Train(arch, data, split, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->best_weights.has_value());
  EXPECT_GE(r->best_validation_accuracy, 0.9);  // not a trivial all-one-class prediction
  auto pred = Predict(arch, *r->best_weights, data, split.validation);
  ASSERT_TRUE(pred.ok()) << pred.status();
  ASSERT_EQ(pred->size(), split.validation.size());
  int correct = 0;
  for (size_t i = 0; i < pred->size(); ++i) {
    correct += (*pred)[i] == data.labels[split.validation[i]];
  }
  EXPECT_DOUBLE_EQ(static_cast<double>(correct) / split.validation.size(),
                   r->best_validation_accuracy);

  auto probs = PredictProbabilities(arch, *r->best_weights, data, split.validation, 2);
  ASSERT_TRUE(probs.ok());
  ASSERT_EQ(probs->size(), split.validation.size() * 2);
  const auto ref = engine::reference::InferLogits(arch, *r->best_weights, data, split.validation);
  const auto ref_p = engine::reference::Softmax(ref, static_cast<int>(split.validation.size()), 2);
  for (size_t i = 0; i < split.validation.size(); ++i) {
    EXPECT_NEAR((*probs)[2 * i] + (*probs)[2 * i + 1], 1.0, 1e-5);
    EXPECT_NEAR((*probs)[2 * i], ref_p[2 * i], 1e-4);
    EXPECT_EQ((*pred)[i], (*probs)[2 * i + 1] > (*probs)[2 * i] ? 1 : 0);
  }
}

TEST(TrainerTest, RejectsBadInputWithClearErrors) {
  const Dataset data = MakeStripes(40, 12, 12, 3, 5);
  const Split split = HeadSplit(data, 30);
  const Architecture arch = MakeArch(2, 1, {12, 12, 3});
  TrainOptions opt;

  const Architecture other = MakeArch(2, 1, {16, 16, 3});
  auto s = Evaluate(other, data, split, opt).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("12x12x3"), std::string::npos) << s;

  const Architecture three = MakeArch(2, 1, {12, 12, 3}, Variant::k2023, 3);
  EXPECT_EQ(Evaluate(three, data, split, opt).status().code(), absl::StatusCode::kInvalidArgument);

  Split empty = split;
  empty.validation.clear();
  EXPECT_EQ(Evaluate(arch, data, empty, opt).status().code(), absl::StatusCode::kInvalidArgument);

  Split outside = split;
  outside.train.push_back(40);
  s = Evaluate(arch, data, outside, opt).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("index 40"), std::string::npos) << s;

  Dataset bad_label = data;
  bad_label.labels[3] = 7;
  EXPECT_EQ(Evaluate(arch, bad_label, split, opt).status().code(),
            absl::StatusCode::kInvalidArgument);

  for (auto mutate : std::vector<std::function<void(TrainOptions&)>>{
           [](TrainOptions& o) { o.epochs = 0; }, [](TrainOptions& o) { o.batch_size = 0; },
           [](TrainOptions& o) { o.threads = 0; }, [](TrainOptions& o) { o.learning_rate = -1; }}) {
    TrainOptions o;
    mutate(o);
    EXPECT_EQ(Evaluate(arch, data, split, o).status().code(), absl::StatusCode::kInvalidArgument);
  }
  ModelWeights empty_weights;
  EXPECT_EQ(Predict(arch, empty_weights, data, {0, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TrainerTest, BatchLargerThanTheSplitsStillTrains) {
  const Dataset data = MakeStripes(30, 8, 8, 1, 6);
  const Split split = HeadSplit(data, 20);
  TrainOptions opt;
  opt.epochs = 1;
  opt.batch_size = 128;
  auto r = Evaluate(MakeArch(1, 0, {8, 8, 1}), data, split, opt);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->epochs.size(), 1u);
}

}  // namespace
}  // namespace nanonas
