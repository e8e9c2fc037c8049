#include "worker/eval/eval_report.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace nanonas {
namespace {

using ::testing::HasSubstr;

// A finished final-training run of (2, 1) with a stand-in model.
EvalRun FinishedRun() {
  EvalRun run;
  run.options.data = "stripes/";
  run.options.test_data = "stripes-test/";
  run.spec.k = 2;
  run.spec.c = 1;
  run.spec.input = {16, 16, 3};
  run.spec.classes = 2;
  run.train.epochs = 2;
  run.data.shape = {16, 16, 3};
  run.data.class_names = {"horizontal", "vertical"};
  run.data.labels = {0, 1, 0};
  run.data.images.assign(3 * 16 * 16 * 3, 0);
  run.hash = std::string(64, 'a');
  run.test = run.data;
  run.test_hash = std::string(64, 'b');
  run.resources.macc = 1000;
  run.resources.flash_bytes = 3;
  run.resources.ram_bytes = 2048;
  run.result.epochs.resize(2);
  run.result.epochs[1].epoch = 2;
  run.result.best_validation_accuracy = 0.75;
  run.result.best_epoch = 2;
  FinalizedModel m;
  m.tflite = "abc";
  m.header = "// model.h\n";
  m.flash_bytes = 3;
  m.quantized_validation_accuracy = 0.7;
  m.has_test = true;
  m.test_images = 3;
  m.float_test_accuracy = 0.6;
  m.quantized_test_accuracy = 0.5;
  run.model = m;
  return run;
}

TEST(EvalReportTest, Sha256IsLowerCaseHex) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(EvalReportTest, ReportJobIsAOneCandidateJob) {
  const EvalRun run = FinishedRun();
  const nanonas::v1::Job job = ReportJob(run, {{"model.tflite", "abc"}}, absl::Now(), 123);
  EXPECT_EQ(job.spec().name(), "nanonas-eval k=2 c=1 on stripes/");
  EXPECT_EQ(job.spec().dataset_id(), "sha256:" + run.hash);
  EXPECT_EQ(job.spec().test_dataset_id(), "sha256:" + run.test_hash);
  ASSERT_EQ(job.candidates_size(), 1);
  EXPECT_EQ(job.candidates(0).flash_bytes(), 3);
  EXPECT_EQ(job.candidates(0).peak_memory_bytes(), 123);
  EXPECT_TRUE(job.result().found());
  EXPECT_THAT(job.result().stop_reason(), HasSubstr("(test set stripes-test/)"));
  EXPECT_DOUBLE_EQ(job.final_training().quantized_test_accuracy(), 0.5);
  EXPECT_EQ(job.final_training().epochs_size(), 2);
  ASSERT_EQ(job.artifacts_size(), 1);
  EXPECT_EQ(job.artifacts(0).sha256(), Sha256Hex("abc"));
}

TEST(EvalReportTest, ExportFilesAreTheModelHeaderReportAndPicture) {
  const EvalRun run = FinishedRun();
  const auto files = ExportFiles(run, 123);
  ASSERT_EQ(files.size(), 4u);
  EXPECT_EQ(files[0].first, "model.tflite");
  EXPECT_EQ(files[0].second, "abc");
  EXPECT_EQ(files[1].first, "model.h");
  EXPECT_EQ(files[1].second, "// model.h\n");
  EXPECT_EQ(files[2].first, "report.json");
  EXPECT_EQ(files[3].first, "search-path.svg");
  EXPECT_THAT(files[3].second, HasSubstr("<svg"));
  const nlohmann::json report = nlohmann::json::parse(files[2].second);
  ASSERT_EQ(report.at("artifacts").size(), 3u);
  EXPECT_EQ(report.at("artifacts")[0].at("name"), "model.tflite");
  EXPECT_EQ(report.at("artifacts")[1].at("name"), "model.h");
  EXPECT_EQ(report.at("artifacts")[2].at("name"), "search-path.svg");
  EXPECT_EQ(report.at("artifacts")[2].at("sha256"), Sha256Hex(files[3].second));
}

}  // namespace
}  // namespace nanonas
