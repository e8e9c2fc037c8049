// The job spec: defaults from the named constants, and the checks that need the dataset.
#include "server/coordinator/job_spec.h"

#include <cmath>
#include <limits>

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

// Numbers that cannot train are refused, naming the field and the limit (NaN and 1e30 learning
// rates were accepted and the job SUCCEEDED at chance accuracy).
TEST(NormalizeSpecTest, LearningRatesAndBatchSizesMustTrain) {
  for (double lr : {std::nan(""), 1e30, std::numeric_limits<double>::infinity(), 10.5}) {
    v1::JobSpec spec = Minimal();
    spec.mutable_evaluation()->set_learning_rate(lr);
    absl::Status st = NormalizeSpec(spec).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << lr;
    EXPECT_THAT(std::string(st.message()), HasSubstr("spec.evaluation.learning_rate is")) << lr;
    spec = Minimal();
    spec.mutable_final_training()->set_learning_rate(lr);
    st = NormalizeSpec(spec).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << lr;
    EXPECT_THAT(std::string(st.message()), HasSubstr("spec.final_training.learning_rate is"));
  }
  v1::JobSpec spec = Minimal();
  spec.mutable_final_training()->set_batch_size(kMaxBatchSize + 1);
  EXPECT_THAT(std::string(NormalizeSpec(spec).status().message()),
              HasSubstr("spec.final_training.batch_size is 4097: at most 4096"));
  spec = Minimal();
  spec.set_validation_split(std::nan(""));
  EXPECT_EQ(NormalizeSpec(spec).status().code(), absl::StatusCode::kInvalidArgument);
  spec = Minimal();
  spec.mutable_evaluation()->set_learning_rate(kMaxLearningRate);
  spec.mutable_evaluation()->set_batch_size(kMaxBatchSize);
  EXPECT_TRUE(NormalizeSpec(spec).ok());
}

// A name goes into lists, file names and model.h: bounded, and no control characters (a 5 MiB
// name made every ListJobs fail on gRPC's 4 MiB message limit).
TEST(NormalizeSpecTest, NamesAreBoundedAndPrintable) {
  v1::JobSpec spec = Minimal();
  spec.set_name(std::string(5 << 20, 'a'));
  absl::Status st = NormalizeSpec(spec).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("spec.name is 5242880 bytes long: at most 256"));
  spec.set_name("vww\r#define X 1");
  EXPECT_THAT(std::string(NormalizeSpec(spec).status().message()),
              HasSubstr("spec.name contains the control character 0x0d"));
  spec.set_name(std::string(kMaxNameBytes, 'a'));
  EXPECT_TRUE(NormalizeSpec(spec).ok());
  spec.set_name("personnes d\xc3\xa9tect\xc3\xa9es");  // UTF-8 is fine
  EXPECT_TRUE(NormalizeSpec(spec).ok());
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
