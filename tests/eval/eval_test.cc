// Runs nanonas-eval: the resource-model path, bad command lines, a 1-epoch training run and the
// final-training path (--final, --export DIR, --test-data) with its error cases, and checks that
// its exported model is the worker service's (EvaluateCandidate) byte for byte.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/data/dataset.h"
#include "common/tflite/tflite_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nanonas/v1/nanonas.pb.h"
#include "nlohmann/json.hpp"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "worker/service/evaluation_child.h"

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
  const fs::path err =
      fs::path(::testing::TempDir()) / ("nanonas_eval_stderr_" + std::to_string(getpid()) + ".txt");
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

// Writes root/<class>/<i>.png, 16x16 RGB stripes with noise: "horizontal" and "vertical" stripes,
// any other class name gets diagonal ones.
void WriteStripes(const fs::path& root, const std::vector<std::string>& classes, int per_class,
                  int seed) {
  cv::RNG rng(seed);
  for (const std::string& cls : classes) {
    fs::create_directories(root / cls);
    for (int i = 0; i < per_class; ++i) {
      cv::Mat img(16, 16, CV_8UC3);
      for (int y = 0; y < 16; ++y) {
        for (int x = 0; x < 16; ++x) {
          const int line = cls == "horizontal" ? y : cls == "vertical" ? x : x + y;
          const int v = (line / 2) % 2 ? 220 : 30;
          const int noise = rng.uniform(-20, 21);
          img.at<cv::Vec3b>(y, x) = cv::Vec3b::all(cv::saturate_cast<uint8_t>(v + noise));
        }
      }
      ASSERT_TRUE(cv::imwrite((root / cls / (std::to_string(i) + ".png")).string(), img));
    }
  }
}

fs::path TempPath(const std::string& name) {
  return fs::path(::testing::TempDir()) / (name + "_" + std::to_string(getpid()));
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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

// A training folder big enough to calibrate (>= 150 training images after a 0.3 validation
// split): 120 stripes per class, 168 train / 72 validation; and a separate 20-per-class test set.
class EvalFinalTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    train_ = new fs::path(TempPath("nanonas_eval_final_train"));
    test_ = new fs::path(TempPath("nanonas_eval_final_test"));
    fs::remove_all(*train_);
    fs::remove_all(*test_);
    WriteStripes(*train_, {"horizontal", "vertical"}, 120, 5);
    WriteStripes(*test_, {"horizontal", "vertical"}, 20, 11);
  }
  static void TearDownTestSuite() {
    fs::remove_all(*train_);
    fs::remove_all(*test_);
    delete train_;
    delete test_;
  }
  static std::string Train() { return "--data '" + train_->string() + "' "; }
  static std::string Test() { return "--test-data '" + test_->string() + "' "; }
  static fs::path* train_;
  static fs::path* test_;
};
fs::path* EvalFinalTest::train_ = nullptr;
fs::path* EvalFinalTest::test_ = nullptr;

TEST_F(EvalFinalTest, ExportWritesTheModelHeaderReportAndPicture) {
  const fs::path out = TempPath("nanonas_eval_export") / "nested";  // created with its parent
  fs::remove_all(out.parent_path());
  Result r = RunEval(Train() + Test() + "--k 2 --c 1 --input 16x16x3 --epochs 3 --batch 8 " +
                     "--export '" + out.string() + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.stdout_only);
  for (const char* name : {"model.tflite", "model.h", "report.json", "search-path.svg"}) {
    EXPECT_TRUE(fs::is_regular_file(out / name)) << name;
  }

  // The .tflite parses with nanonas's reader; uint8 in and out; its size is the predicted Flash.
  const std::string tflite = ReadFile(out / "model.tflite");
  absl::StatusOr<nanonas::TfliteGraph> g = nanonas::DescribeTfliteModel(tflite);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->inputs.size(), 1u);
  ASSERT_EQ(g->outputs.size(), 1u);
  const nanonas::TfliteTensor& in = g->tensors[g->inputs[0]];
  const nanonas::TfliteTensor& outp = g->tensors[g->outputs[0]];
  EXPECT_EQ(in.shape, (std::vector<int>{1, 16, 16, 3}));
  EXPECT_EQ(in.type, tflite::TensorType_UINT8);
  EXPECT_EQ(outp.shape, (std::vector<int>{1, 2}));
  EXPECT_EQ(outp.type, tflite::TensorType_UINT8);
  EXPECT_EQ(g->ops.front().op, "QUANTIZE");
  EXPECT_EQ(g->ops.back().op, "QUANTIZE");
  const int64_t size = static_cast<int64_t>(tflite.size());
  EXPECT_EQ(g->file_bytes, size);
  EXPECT_EQ(j.at("predicted_flash_bytes").get<int64_t>(), size);
  EXPECT_EQ(j.at("flash_bytes").get<int64_t>(), size);
  EXPECT_EQ(j.at("tflite_bytes").get<int64_t>(), size);
  EXPECT_TRUE(j.at("flash_matches_prediction").get<bool>());
  EXPECT_TRUE(j.at("flash_exact").get<bool>());

  // The C header: the aligned array and its length.
  const std::string header = ReadFile(out / "model.h");
  EXPECT_THAT(header, HasSubstr("alignas(16) const unsigned char nanonas_k2_c1_model[] = {"));
  EXPECT_THAT(
      header,
      HasSubstr("const unsigned int nanonas_k2_c1_model_len = " + std::to_string(size) + ";"));
  EXPECT_THAT(header, HasSubstr("0x54, 0x46, 0x4c, 0x33"));  // "TFL3" at offset 4

  // Accuracies: float and quantized, validation and test, all in [0, 1] and consistent.
  for (const char* key :
       {"best_validation_accuracy", "float_validation_accuracy", "quantized_validation_accuracy",
        "float_test_accuracy", "quantized_test_accuracy"}) {
    SCOPED_TRACE(key);
    EXPECT_GE(j.at(key).get<double>(), 0.0);
    EXPECT_LE(j.at(key).get<double>(), 1.0);
  }
  // The kept weights are those of the best epoch: re-scoring them gives its accuracy.
  EXPECT_NEAR(j.at("float_validation_accuracy").get<double>(),
              j.at("best_validation_accuracy").get<double>(), 1.5 / 72);
  EXPECT_EQ(j.at("test_images").get<int>(), 40);
  EXPECT_EQ(j.at("calibration_images").get<int>(), 150);
  EXPECT_EQ(j.at("settings").at("epochs").get<int>(), 3);
  EXPECT_EQ(j.at("export").at("files").size(), 4u);

  // report.json: the service's format, one candidate on the path, the final training's figures.
  const nlohmann::json rep = nlohmann::json::parse(ReadFile(out / "report.json"));
  ASSERT_EQ(rep.at("path").size(), 1u);
  EXPECT_EQ(rep.at("path")[0].at("k").get<int>(), 2);
  EXPECT_EQ(rep.at("path")[0].at("c").get<int>(), 1);
  EXPECT_EQ(rep.at("path")[0].at("flash_bytes").get<int64_t>(), size);
  EXPECT_EQ(rep.at("path")[0].at("macc").get<int64_t>(), j.at("macc").get<int64_t>());
  EXPECT_TRUE(rep.at("result").at("found").get<bool>());
  const nlohmann::json& ft = rep.at("final_training");
  EXPECT_EQ(ft.at("flash_bytes").get<int64_t>(), size);
  EXPECT_EQ(ft.at("ram_bytes").get<int64_t>(), j.at("ram_bytes").get<int64_t>());
  EXPECT_EQ(ft.at("epochs").size(), 3u);
  EXPECT_DOUBLE_EQ(ft.at("best_validation_accuracy").get<double>(),
                   j.at("best_validation_accuracy").get<double>());
  EXPECT_DOUBLE_EQ(ft.at("quantized_validation_accuracy").get<double>(),
                   j.at("quantized_validation_accuracy").get<double>());
  EXPECT_DOUBLE_EQ(ft.at("float_test_accuracy").get<double>(),
                   j.at("float_test_accuracy").get<double>());
  EXPECT_DOUBLE_EQ(ft.at("quantized_test_accuracy").get<double>(),
                   j.at("quantized_test_accuracy").get<double>());
  EXPECT_EQ(rep.at("job").at("class_names"),
            nlohmann::json::parse(R"(["horizontal", "vertical"])"));
  ASSERT_GE(rep.at("artifacts").size(), 1u);
  EXPECT_EQ(rep.at("artifacts")[0].at("name").get<std::string>(), "model.tflite");
  EXPECT_EQ(rep.at("artifacts")[0].at("size_bytes").get<int64_t>(), size);
  EXPECT_EQ(rep.at("artifacts")[0].at("sha256").get<std::string>().size(), 64u);
  EXPECT_THAT(ReadFile(out / "search-path.svg"), HasSubstr("<svg"));
  fs::remove_all(out.parent_path());
}

// nanonas-eval and the worker's evaluation child finalize a model on one path (FinalizeModel):
// the same data, (k, c), seed and epochs give the same model.tflite, byte for byte.
TEST_F(EvalFinalTest, ExportedModelIsTheWorkerServicesByteForByte) {
  const fs::path out = TempPath("nanonas_eval_parity");
  fs::remove_all(out);
  Result r = RunEval(Train() + "--k 2 --c 1 --input 16x16x3 --final --epochs 2 --batch 32 " +
                     "--seed 3 --export '" + out.string() + "' --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.stdout_only);
  const std::string eval_tflite = ReadFile(out / "model.tflite");
  fs::remove_all(out);

  // The same folder as nanonas-eval loads it, trained and exported by the service's child.
  nanonas::FolderOptions folder;
  folder.size = {16, 16, 3};
  folder.threads = 1;
  absl::StatusOr<nanonas::Dataset> data = nanonas::LoadImageFolder(train_->string(), folder);
  ASSERT_TRUE(data.ok()) << data.status();
  nanonas::v1::EvaluateRequest request;
  request.mutable_input()->set_height(16);
  request.mutable_input()->set_width(16);
  request.mutable_input()->set_channels(3);
  request.set_k(2);
  request.set_c(1);
  request.set_variant("2023");
  request.set_validation_split(0.3);
  request.mutable_settings()->set_seed(3);
  request.set_final_training(true);
  request.mutable_final_settings()->set_epochs(2);
  request.mutable_final_settings()->set_learning_rate(0.01f);
  request.mutable_final_settings()->set_batch_size(32);
  const nanonas::v1::EvaluateResult service =
      nanonas::EvaluateCandidate(request, *data, 0, [](const nanonas::v1::EvaluateEvent&) {});
  ASSERT_EQ(service.state(), nanonas::v1::CANDIDATE_STATE_DONE) << service.error();
  ASSERT_FALSE(eval_tflite.empty());
  EXPECT_TRUE(service.tflite() == eval_tflite)
      << "service " << service.tflite().size() << " bytes, nanonas-eval " << eval_tflite.size();
  EXPECT_DOUBLE_EQ(service.best_validation_accuracy(),
                   j.at("best_validation_accuracy").get<double>());
  EXPECT_DOUBLE_EQ(service.quantized_validation_accuracy(),
                   j.at("quantized_validation_accuracy").get<double>());
}

TEST_F(EvalFinalTest, FinalWithoutTestSetReportsValidationFiguresOnly) {
  // --final's defaults (100 epochs, Adam 0.01, batch 128) with the epochs overridden.
  Result r = RunEval(Train() + "--k 2 --c 1 --input 16x16x3 --final --epochs 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.stdout_only);
  const nlohmann::json& s = j.at("settings");
  EXPECT_EQ(s.at("epochs").get<int>(), 1);
  EXPECT_EQ(s.at("batch_size").get<int>(), 128);
  EXPECT_NEAR(s.at("learning_rate").get<double>(), 0.01, 1e-7);
  EXPECT_TRUE(s.at("final").get<bool>());
  ASSERT_EQ(j.at("epochs").size(), 1u);
  EXPECT_GE(j.at("quantized_validation_accuracy").get<double>(), 0.0);
  EXPECT_LE(j.at("quantized_validation_accuracy").get<double>(), 1.0);
  EXPECT_FALSE(j.contains("float_test_accuracy"));
  EXPECT_FALSE(j.contains("quantized_test_accuracy"));
  EXPECT_FALSE(j.contains("export"));
  EXPECT_EQ(j.at("tflite_bytes").get<int64_t>(), j.at("flash_bytes").get<int64_t>());

  // Text output: validation figures, no test line.
  Result t = RunEval(Train() + "--k 2 --c 1 --input 16x16x3 --final --epochs 1");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_THAT(t.stdout_only, HasSubstr("quantized (integer inference)"));
  EXPECT_THAT(t.stdout_only, ::testing::Not(HasSubstr("\ntest ")));
}

TEST_F(EvalFinalTest, UnwritableExportDirFailsBeforeTraining) {
  const fs::path file = TempPath("nanonas_eval_export_file");
  { std::ofstream(file) << "not a directory"; }
  Result r = RunEval(Train() + "--k 2 --c 1 --input 16x16x3 --epochs 1 --export '" +
                     (file / "out").string() + "'");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("cannot create the --export directory"));
  EXPECT_THAT(r.output, HasSubstr((file / "out").string()));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("epoch 1/")));  // failed before training
  Result f =
      RunEval(Train() + "--k 2 --c 1 --input 16x16x3 --epochs 1 --export '" + file.string() + "'");
  EXPECT_EQ(f.exit_code, 1) << f.output;
  EXPECT_THAT(f.output, HasSubstr(file.string()));
  fs::remove(file);
}

TEST_F(EvalFinalTest, TestSetWithOtherClassesIsRejected) {
  const fs::path other = TempPath("nanonas_eval_other_classes");
  fs::remove_all(other);
  WriteStripes(other, {"horizontal", "diagonal"}, 3, 7);
  Result r = RunEval(Train() + "--k 2 --c 1 --input 16x16x3 --epochs 1 --test-data '" +
                     other.string() + "'");
  fs::remove_all(other);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("do not match the expected classes"));
  EXPECT_THAT(r.output, HasSubstr("missing vertical"));
  EXPECT_THAT(r.output, HasSubstr("unexpected diagonal"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("epoch 1/")));
}

TEST_F(EvalFinalTest, TooFewTrainingImagesToCalibrateIsAFailure) {
  const fs::path small = TempPath("nanonas_eval_small");
  fs::remove_all(small);
  WriteStripes(small, {"horizontal", "vertical"}, 20, 3);  // 28 training images
  Result r = RunEval("--data '" + small.string() + "' --k 2 --c 1 --input 16x16x3 --final");
  fs::remove_all(small);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("training split has only 28"));
  EXPECT_THAT(r.output, ::testing::Not(HasSubstr("epoch 1/")));
}

TEST(EvalTest, FinalPathBadCommandLinesExitTwo) {
  struct Case {
    const char* args;
    const char* message;
  } cases[] = {
      {"--k 3 --c 1 --data /tmp --calibration-images 100", "--calibration-images must be >= 150"},
      {"--k 3 --c 1 --data /tmp --test-data fashion-mnist-test:0", "fashion-mnist-test:N"},
      {"--estimate-only --k 3 --c 1 --export /tmp/x", "--estimate-only trains nothing"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    Result r = RunEval(c.args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_THAT(r.output, HasSubstr(c.message));
  }
}

}  // namespace
