#include "common/export/finalize.h"

#include <algorithm>
#include <random>

#include "common/arch/mcu_model.h"
#include "common/export/c_header.h"
#include "common/export/inference.h"
#include "common/export/tflite_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/export/export_test_util.h"

namespace nanonas {
namespace {

using ::testing::HasSubstr;

// FNV-1a, 64 bits: a stable fingerprint of a file's bytes.
uint64_t Fingerprint(const std::string& bytes) {
  uint64_t h = 14695981039346656037ULL;
  for (char ch : bytes) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ULL;
  }
  return h;
}

struct Fixture {
  Architecture arch;
  ModelWeights weights;
  Dataset data;
  Split split;  // 200 training images, 40 validation images
};

Fixture MakeFixture() {
  CandidateSpec s;
  s.k = 3;
  s.c = 2;
  s.input = {16, 16, 3};
  s.classes = 3;
  Fixture f;
  f.arch = *BuildArchitecture(s);
  f.weights = testing_util::RandomWeights(f.arch, 5);
  f.data = testing_util::RandomImages(s.input, 240, 3, 5);
  for (int64_t i = 0; i < 240; ++i) (i % 6 == 5 ? f.split.validation : f.split.train).push_back(i);
  return f;
}

// The predictor a test gives: every label right.
FloatPredictor Oracle() {
  return [](const Dataset& d, const std::vector<int64_t>& indices) {
    std::vector<int32_t> labels;
    for (int64_t i : indices) labels.push_back(d.labels[static_cast<size_t>(i)]);
    return absl::StatusOr<std::vector<int32_t>>(labels);
  };
}

TEST(FinalizeModelTest, WritesFileHeaderAndGraphTogether) {
  const Fixture f = MakeFixture();
  FinalizeOptions options;
  options.name = "demo";
  auto m = FinalizeModel(f.arch, f.weights, f.data, f.split, nullptr, 7, options);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(static_cast<int64_t>(m->tflite.size()), *PredictFlashBytes(f.arch));
  EXPECT_EQ(m->flash_bytes, static_cast<int64_t>(m->tflite.size()));
  EXPECT_EQ(*SerializeTflite(m->graph), m->tflite);
  EXPECT_NE(m->header.find("nanonas_demo_model_len = " + std::to_string(m->tflite.size())),
            std::string::npos);
  EXPECT_NE(m->header.find("k=3 c=2"), std::string::npos);
  EXPECT_EQ(m->ram_bytes, EstimateMcuResources(f.arch).ram_bytes);
  ModelDescription d;
  d.name = "demo";
  d.variant = "2023";
  d.k = 3;
  d.c = 2;
  d.classes = 3;
  d.input = {16, 16, 3};
  d.ram_bytes = m->ram_bytes;
  EXPECT_EQ(m->header, ModelHeaderText(m->tflite, d));
  EXPECT_EQ(m->calibration_images, 150);
}

// The worker's final training exported this model before FinalizeModel existed (a seeded
// std::shuffle of the training split, its first 150 images): the same bytes still come out.
TEST(FinalizeModelTest, KeepsTheServicesModelBytes) {
  const Fixture f = MakeFixture();
  auto m = FinalizeModel(f.arch, f.weights, f.data, f.split, nullptr, 7);
  ASSERT_TRUE(m.ok()) << m.status();
  // Pinned from the former path (ExportModel on the shuffled split, removed since).
  EXPECT_EQ(m->tflite.size(), 6288u);
  EXPECT_EQ(Fingerprint(m->tflite), 4666547215712257371ULL);
  // The same calibration set by hand: the model depends on nothing else.
  std::vector<int64_t> shuffled = f.split.train;
  std::mt19937_64 rng(7);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  shuffled.resize(150);
  EXPECT_EQ(CalibrationImages(f.split.train, 150, 7), shuffled);
  EXPECT_EQ(*SerializeTflite(*QuantizeModel(f.arch, f.weights, f.data, shuffled)), m->tflite);
}

TEST(FinalizeModelTest, CalibrationImagesAreASeededChoiceOfTrainingImages) {
  const std::vector<int64_t> train = testing_util::Range(400);
  const std::vector<int64_t> a = CalibrationImages(train, 150, 1);
  EXPECT_EQ(a.size(), 150u);
  EXPECT_EQ(CalibrationImages(train, 150, 1), a);
  EXPECT_NE(CalibrationImages(train, 150, 2), a);
  const std::vector<int64_t> more = CalibrationImages(train, 200, 1);
  ASSERT_EQ(more.size(), 200u);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), more.begin()));  // n only cuts the shuffle
  for (int64_t i : more) EXPECT_TRUE(i >= 0 && i < 400);
}

TEST(FinalizeModelTest, TooFewTrainingImagesToCalibrateIsInvalidArgument) {
  Fixture f = MakeFixture();
  f.split.train.resize(100);
  auto few = FinalizeModel(f.arch, f.weights, f.data, f.split, nullptr, 7);
  EXPECT_EQ(few.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(few.status().message(), HasSubstr("at least 150"));
  EXPECT_THAT(few.status().message(), HasSubstr("training split has only 100"));
  EXPECT_TRUE(CheckCalibrationSet(150, 150).ok());
  EXPECT_THAT(CheckCalibrationSet(180, 200).message(),
              HasSubstr("calibrates on 200 training images but the training split has only 180"));
  EXPECT_EQ(CheckCalibrationSet(1000, 100).code(), absl::StatusCode::kInvalidArgument);
  FinalizeOptions options;
  options.calibration_images = 201;
  f = MakeFixture();
  EXPECT_EQ(FinalizeModel(f.arch, f.weights, f.data, f.split, nullptr, 7, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FinalizeModelTest, ScoresValidationAndTestSets) {
  const Fixture f = MakeFixture();
  const Dataset test = testing_util::RandomImages({16, 16, 3}, 30, 3, 9);
  FinalizeOptions options;
  options.float_predict = Oracle();
  options.float_validation = true;
  auto m = FinalizeModel(f.arch, f.weights, f.data, f.split, &test, 7, options);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_DOUBLE_EQ(m->quantized_validation_accuracy,
                   *QuantizedAccuracy(m->graph, f.data, f.split.validation));
  EXPECT_DOUBLE_EQ(m->float_validation_accuracy, 1.0);
  EXPECT_TRUE(m->has_test);
  EXPECT_EQ(m->test_images, 30);
  EXPECT_DOUBLE_EQ(m->float_test_accuracy, 1.0);
  EXPECT_DOUBLE_EQ(m->quantized_test_accuracy,
                   *QuantizedAccuracy(m->graph, test, testing_util::Range(30)));

  // Without a test set, a predictor or float_validation: those figures stay 0.
  auto bare = FinalizeModel(f.arch, f.weights, f.data, f.split, nullptr, 7);
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_FALSE(bare->has_test);
  EXPECT_EQ(bare->float_validation_accuracy, 0);
  EXPECT_EQ(bare->tflite, m->tflite);
  EXPECT_DOUBLE_EQ(bare->quantized_validation_accuracy, m->quantized_validation_accuracy);

  // A predictor's error ends the export.
  options.float_predict = [](const Dataset&, const std::vector<int64_t>&) {
    return absl::StatusOr<std::vector<int32_t>>(absl::InternalError("oneDNN"));
  };
  EXPECT_EQ(FinalizeModel(f.arch, f.weights, f.data, f.split, &test, 7, options).status().code(),
            absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace nanonas
