// The job spec: defaults from the named constants, and the checks that need the dataset.
#include "server/coordinator/job_spec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas::coordinator {
namespace {

namespace v1 = nanonas::v1;
using ::testing::HasSubstr;

v1::JobSpec Minimal() {
  v1::JobSpec spec;
  spec.set_dataset_id("sha256:x");
  spec.mutable_input()->set_height(32);
  spec.mutable_input()->set_width(32);
  spec.mutable_constraints()->set_ram_bytes(1000);
  return spec;
}

TEST(NormalizeSpecTest, FillsTheDefaults) {
  auto spec = NormalizeSpec(Minimal());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->variant(), kDefaultVariant);
  EXPECT_EQ(spec->input().channels(), 3);
  EXPECT_EQ(spec->color_mode(), v1::COLOR_MODE_RGB);
  EXPECT_DOUBLE_EQ(spec->validation_split(), kDefaultValidationSplit);
  EXPECT_EQ(spec->evaluation().epochs(), kDefaultEpochs);
  EXPECT_EQ(spec->evaluation().batch_size(), kDefaultBatchSize);
  EXPECT_FLOAT_EQ(spec->evaluation().learning_rate(), kDefaultLearningRate);
  EXPECT_EQ(spec->evaluation().seed(), kDefaultSeed);
  EXPECT_EQ(spec->final_training().epochs(), kDefaultFinalEpochs);
  EXPECT_EQ(spec->final_training().batch_size(), kDefaultFinalBatchSize);
  EXPECT_FLOAT_EQ(spec->final_training().learning_rate(), kDefaultFinalLearningRate);
}

TEST(NormalizeSpecTest, BoundsAreEnforced) {
  v1::JobSpec spec = Minimal();
  spec.mutable_evaluation()->set_epochs(kMaxEpochs + 1);
  EXPECT_THAT(std::string(NormalizeSpec(spec).status().message()),
              HasSubstr("spec.evaluation.epochs is above 1000"));
  spec = Minimal();
  spec.mutable_input()->set_width(kMaxInputSide + 1);
  EXPECT_THAT(std::string(NormalizeSpec(spec).status().message()), HasSubstr("at most 4096x4096"));
}

TEST(CheckTestClassesTest, NamesBothClassLists) {
  EXPECT_TRUE(CheckTestClasses({"a", "b"}, {"a", "b"}).ok());
  absl::Status st = CheckTestClasses({"a", "b"}, {"cats", "dogs"});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("[cats, dogs]"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("[a, b]"));
}

TEST(CheckCalibrationImagesTest, NeedsEnoughTrainingImagesUnlessTheFinalTrainingIsSkipped) {
  v1::JobSpec spec = *NormalizeSpec(Minimal());
  EXPECT_TRUE(CheckCalibrationImages(spec, 300).ok());  // 210 training images
  EXPECT_THAT(std::string(CheckCalibrationImages(spec, 100).message()), HasSubstr("leaves 70"));
  spec.mutable_final_training()->set_skip(true);
  EXPECT_TRUE(CheckCalibrationImages(spec, 100).ok());
}

}  // namespace
}  // namespace nanonas::coordinator
