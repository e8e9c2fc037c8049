// Runs nanonas-eval: the resource-model path, bad command lines and a 1-epoch training run.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
  std::string stdout_only;
};

// Runs the binary with `args` (a shell-quoted string).
Result RunEval(const std::string& args) {
  // ctest may run these tests in parallel processes: one stderr file per process.
  const fs::path err = fs::path(::testing::TempDir()) /
                       ("nanonas_eval_stderr_" + std::to_string(getpid()) + ".txt");
  const std::string cmd =
      std::string("'") + NANONAS_EVAL_BINARY + "' " + args + " 2>'" + err.string() + "'";
  Result r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.stdout_only.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  FILE* e = fopen(err.c_str(), "r");
  r.output = r.stdout_only;
  if (e != nullptr) {
    while ((n = fread(buf, 1, sizeof(buf), e)) > 0) r.output.append(buf, n);
    fclose(e);
  }
  fs::remove(err);
  return r;
}

TEST(EvalTest, EstimateOnlyJsonGivesTheReferenceRam) {
  // Reference model k=3 c=4 at 50x50x3 with 2 classes: RAM 20992 bytes (mcu-memory-model.md).
  Result r = RunEval("--estimate-only --k 3 --c 4 --input 50x50x3 --classes 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.stdout_only);
  ASSERT_EQ(j.size(), 3u) << r.stdout_only;
  EXPECT_EQ(j.at("ram_bytes").get<int64_t>(), 20992);
  EXPECT_GT(j.at("macc").get<int64_t>(), 0);
  EXPECT_GT(j.at("flash_bytes").get<int64_t>(), 0);
  // Keys in the documented order.
  EXPECT_EQ(r.stdout_only.rfind("{\"macc\":", 0), 0u) << r.stdout_only;
}

TEST(EvalTest, EstimateOnlyTextAndDefaults) {
  Result r = RunEval("--estimate-only --k=3 --c=4");  // defaults: 50x50x3, 2 classes
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("RAM"));
  EXPECT_THAT(r.stdout_only, HasSubstr("20992 B"));
  Result j = RunEval("--estimate-only --k 3 --c 4 --classes 10 --variant 2024 --json");
  ASSERT_EQ(j.exit_code, 0) << j.output;
  EXPECT_GT(nlohmann::json::parse(j.stdout_only).at("ram_bytes").get<int64_t>(), 0);
}

TEST(EvalTest, HelpExitsZeroAndListsFlags) {
  Result r = RunEval("--help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.stdout_only, HasSubstr("--val-split"));
  EXPECT_THAT(r.stdout_only, HasSubstr("--estimate-only"));
}

TEST(EvalTest, BadCommandLinesExitTwoWithAMessage) {
  struct Case {
    const char* args;
    const char* message;
  } cases[] = {
      {"--estimate-only --k 3 --c 4 --bogus", "unknown flag --bogus"},
      {"--estimate-only --k three --c 4", "bad value 'three' for --k"},
      {"--estimate-only --c 4", "--k is required"},
      {"--estimate-only --k 3 --c 9", "c=9"},
      {"--estimate-only --k 3 --c 1 --input 50x50x2", "channels"},
      {"--estimate-only --k 3 --c 1 --variant 2025", "2025"},
      {"--estimate-only --k 3 --c 1 --classes 1", "--classes 1"},
      {"--estimate-only --k 3 --c 1 stray", "unexpected argument 'stray'"},
      {"--k 3 --c 1", "--data is required"},
      {"--k 3 --c 1 --data fashion-mnist:zero", "fashion-mnist:N"},
      {"--k 3 --c 1 --data /tmp --val-split 1.5", "--val-split"},
      {"--k 3 --c 1 --data /tmp --epochs 0", "--epochs"},
      {"--k 3", "--c is required"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    Result r = RunEval(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message));
  }
}

#ifdef NANONAS_EVAL_HAS_ENGINE
TEST(EvalTest, MissingDataFolderIsAFailure) {
  const std::string missing = (fs::path(::testing::TempDir()) / "nanonas_eval_missing").string();
  Result r = RunEval("--k 2 --c 1 --data '" + missing + "'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr(missing));
}

TEST(EvalTest, OneEpochOnATinyFolderPrintsJson) {
  // Horizontal vs vertical stripes, 20 images each, 16x16 with noise.
  const fs::path root =
      fs::path(::testing::TempDir()) / ("nanonas_eval_stripes_" + std::to_string(getpid()));
  fs::remove_all(root);
  cv::RNG rng(3);
  for (const char* cls : {"horizontal", "vertical"}) {
    fs::create_directories(root / cls);
    for (int i = 0; i < 20; ++i) {
      cv::Mat img(16, 16, CV_8UC3);
      for (int y = 0; y < 16; ++y) {
        for (int x = 0; x < 16; ++x) {
          const int line = std::string(cls) == "horizontal" ? y : x;
          const int v = (line / 2) % 2 ? 220 : 30;
          const int noise = rng.uniform(-20, 21);
          img.at<cv::Vec3b>(y, x) = cv::Vec3b::all(cv::saturate_cast<uint8_t>(v + noise));
        }
      }
      ASSERT_TRUE(cv::imwrite((root / cls / (std::to_string(i) + ".png")).string(), img));
    }
  }
  Result r = RunEval("--data '" + root.string() +
                 "' --k 2 --c 1 --input 16x16x3 --epochs 1 --batch 8 --json");
  fs::remove_all(root);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.stdout_only);
  const double best = j.at("best_validation_accuracy").get<double>();
  EXPECT_GE(best, 0.0);
  EXPECT_LE(best, 1.0);
  EXPECT_EQ(j.at("images").get<int>(), 40);
  EXPECT_EQ(j.at("train_images").get<int>(), 28);
  EXPECT_EQ(j.at("validation_images").get<int>(), 12);
  EXPECT_EQ(j.at("classes").get<int>(), 2);
  ASSERT_EQ(j.at("epochs").size(), 1u);
  EXPECT_DOUBLE_EQ(j.at("epochs")[0].at("validation_accuracy").get<double>(), best);
  EXPECT_GT(j.at("ram_bytes").get<int64_t>(), 0);
  EXPECT_GT(j.at("peak_memory_bytes").get<int64_t>(), 0);
  EXPECT_GT(j.at("train_images_per_second").get<double>(), 0);
  EXPECT_EQ(j.at("dataset_hash").get<std::string>().size(), 64u);
}
#endif

}  // namespace
