#include "worker/eval/eval_output.h"

#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace nanonas {
namespace {

using ::testing::HasSubstr;

EvalRun TrainedRun() {
  EvalRun run;
  run.options.data = "stripes/";
  run.spec.k = 2;
  run.spec.c = 1;
  run.spec.input = {16, 16, 3};
  run.spec.classes = 2;
  run.arch.channels = {2, 4};
  run.train.epochs = 1;
  run.train.threads = 1;
  run.data.class_names = {"a", "b"};
  run.data.labels = {0, 1, 0, 1};
  run.split.train = {0, 1, 2};
  run.split.validation = {3};
  run.hash = "0123456789abcdef0123";
  run.result.epochs.resize(1);
  run.result.epochs[0].epoch = 1;
  run.result.best_validation_accuracy = 0.5;
  run.result.best_epoch = 1;
  run.resources.macc = 1234;
  run.resources.flash_bytes = 5000;
  run.resources.flash_exact = true;
  run.resources.ram_bytes = 2048;
  return run;
}

TEST(EvalOutputTest, ResourcesAsTextAndJson) {
  McuResources r;
  r.macc = 422362;
  r.flash_bytes = 11760;
  r.ram_bytes = 20992;
  r.flash_exact = true;
  EXPECT_EQ(ResourcesText(r),
            "MACC 422.4 k (422362), Flash 11.5 KiB (11760 B, exported file), "
            "RAM 20.5 KiB (20992 B)");
  EXPECT_EQ(ResourcesJson(r).dump(), R"({"macc":422362,"flash_bytes":11760,"ram_bytes":20992})");
}

TEST(EvalOutputTest, DataAndEpochLines) {
  const EvalRun run = TrainedRun();
  EXPECT_EQ(DataLine(run),
            "data: stripes/, 4 images (3 train, 1 validation), 2 classes, hash 0123456789abcdef, "
            "loaded in 0.00 s\n");
  EpochStats e;
  e.epoch = 2;
  e.train_loss = 0.5;
  e.train_accuracy = 0.75;
  e.validation_loss = 0.25;
  e.validation_accuracy = 1;
  e.seconds = 1.5;
  EXPECT_EQ(EpochLine(e, 3),
            "epoch 2/3: train loss 0.5000 accuracy 0.7500, validation loss 0.2500 accuracy "
            "1.0000, 1.50 s\n");
}

TEST(EvalOutputTest, JsonHasFinalKeysOnlyOnTheFinalPath) {
  EvalRun run = TrainedRun();
  std::ostringstream plain;
  PrintResultJson(run, plain);
  const nlohmann::json j = nlohmann::json::parse(plain.str());
  EXPECT_EQ(plain.str().rfind("{\"k\":2,\"c\":1,\"channels\":[2,4],", 0), 0u) << plain.str();
  EXPECT_EQ(j.at("best_validation_accuracy").get<double>(), 0.5);
  EXPECT_FALSE(j.contains("tflite_bytes"));

  run.options.final = true;
  run.options.export_dir = "out";
  FinalizedModel m;
  m.flash_bytes = 5000;
  m.calibration_images = 150;
  run.model = m;
  run.files = {{"model.tflite", std::string(5000, 'x')}};
  std::ostringstream final_json;
  PrintResultJson(run, final_json);
  const nlohmann::json f = nlohmann::json::parse(final_json.str());
  EXPECT_EQ(f.at("tflite_bytes").get<int64_t>(), 5000);
  EXPECT_TRUE(f.at("flash_matches_prediction").get<bool>());
  EXPECT_TRUE(f.at("settings").at("keep_best_weights").get<bool>());
  EXPECT_EQ(f.at("export").at("files")[0].at("path").get<std::string>(), "out/model.tflite");
  EXPECT_FALSE(f.contains("float_test_accuracy"));

  std::ostringstream text;
  PrintResultText(run, text);
  EXPECT_THAT(text.str(), HasSubstr("best validation accuracy 0.5000 (epoch 1)\n"));
  EXPECT_THAT(text.str(), HasSubstr("calibrated on 150 training images\n"));
  EXPECT_THAT(text.str(),
              HasSubstr("model.tflite 5000 bytes, predicted Flash 5000 bytes: equal\n"));
  EXPECT_THAT(text.str(), HasSubstr("wrote out/model.tflite (5000 bytes)\n"));
}

}  // namespace
}  // namespace nanonas
