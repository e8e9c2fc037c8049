#include "common/api/defaults.h"

#include "gtest/gtest.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas::defaults {
namespace {
namespace v1 = nanonas::v1;

TEST(ApiDefaultsTest, DefaultJobSpecFollowsNanoNas) {
  const v1::JobSpec s = DefaultJobSpec();
  EXPECT_EQ(s.input().height(), 50);
  EXPECT_EQ(s.input().width(), 50);
  EXPECT_EQ(s.input().channels(), 3);
  EXPECT_DOUBLE_EQ(s.validation_split(), 0.3);
  EXPECT_EQ(s.variant(), "2023");
  EXPECT_EQ(s.evaluation().epochs(), 3);
  EXPECT_FLOAT_EQ(s.evaluation().learning_rate(), 0.001f);
  EXPECT_EQ(s.evaluation().batch_size(), 16);
  EXPECT_EQ(s.evaluation().seed(), 1u);
  EXPECT_EQ(s.final_training().epochs(), 100);
  EXPECT_FLOAT_EQ(s.final_training().learning_rate(), 0.01f);
  EXPECT_EQ(s.final_training().batch_size(), 128);
  EXPECT_FALSE(s.final_training().skip());
  EXPECT_TRUE(s.dataset_id().empty());
  EXPECT_EQ(s.constraints().ram_bytes(), 0);
}

TEST(ApiDefaultsTest, FillingKeepsExplicitValues) {
  v1::EvaluationSettings e;
  e.set_epochs(7);
  e.set_seed(42);
  FillEvaluationDefaults(&e);
  EXPECT_EQ(e.epochs(), 7);
  EXPECT_EQ(e.seed(), 42u);
  EXPECT_EQ(e.batch_size(), kBatchSize);
  EXPECT_FLOAT_EQ(e.learning_rate(), kLearningRate);
  v1::FinalTrainingSettings f;
  f.set_batch_size(32);
  FillFinalTrainingDefaults(&f);
  EXPECT_EQ(f.batch_size(), 32);
  EXPECT_EQ(f.epochs(), kFinalEpochs);
  EXPECT_FLOAT_EQ(f.learning_rate(), kFinalLearningRate);
}

}  // namespace
}  // namespace nanonas::defaults
