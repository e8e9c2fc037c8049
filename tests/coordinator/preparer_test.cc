// The production preparer (ThreadPreparer) on its own, and end to end under a Coordinator with the
// real DatasetRegistry on a temporary folder. Waits on notifications and the watch stream, never
// on sleeps.
#include "server/coordinator/preparer.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/dataset_registry.h"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::coordinator::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Collects a preparation's callbacks; Wait() returns its result.
struct Recorder {
  std::vector<v1::Preparation> progress;
  absl::Notification done;
  absl::StatusOr<PreparationResult> result = absl::UnknownError("not done");

  DatasetPreparer::ProgressFn Progress() {
    return [this](const v1::Preparation& p) { progress.push_back(p); };
  }
  DatasetPreparer::DoneFn Done() {
    return [this](absl::StatusOr<PreparationResult> r) {
      result = std::move(r);
      done.Notify();
    };
  }
  const absl::StatusOr<PreparationResult>& Wait() {
    done.WaitForNotification();
    return result;
  }
};

PreparationRequest Request(const std::string& train, const std::string& test = "") {
  PreparationRequest r;
  r.job_id = "job-1";
  r.dataset_id = train;
  r.test_dataset_id = test;
  r.input = InputShape{50, 50, 3};
  return r;
}

TEST(ThreadPreparerTest, PreparesTheTrainingThenTheTestSetReportingEach) {
  ThreadPreparer preparer(FakePreparationDecoder());
  Recorder rec;
  auto handle = preparer.Start(Request("sha256:" + Hex64('a'), "sha256:" + Hex64('b')),
                               rec.Progress(), rec.Done());
  const auto& result = rec.Wait();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->train.dataset.id, Hex64('d'));
  ASSERT_TRUE(result->test.has_value());
  EXPECT_EQ(result->test->dataset.id, Hex64('f'));
  ASSERT_GE(rec.progress.size(), 4u);
  EXPECT_EQ(rec.progress.front().dataset_id(), "sha256:" + Hex64('a'));
  EXPECT_FALSE(rec.progress.front().test_set());
  EXPECT_EQ(rec.progress.back().dataset_id(), "sha256:" + Hex64('b'));
  EXPECT_TRUE(rec.progress.back().test_set());
  EXPECT_EQ(rec.progress.back().images_done(), 50);
  EXPECT_EQ(rec.progress.back().images_total(), 50);
}

TEST(ThreadPreparerTest, ATestSetErrorSaysSoAndAQueuedCancelledPreparationEndsCancelled) {
  absl::Notification release;
  absl::Notification first_running;
  PreparationDecoder gated = [&](const std::string& id, const InputShape& input,
                                 const ImagesProgress& progress) {
    if (!first_running.HasBeenNotified()) first_running.Notify();
    release.WaitForNotification();
    return FakePreparationDecoder()(id, input, progress);
  };
  ThreadPreparer preparer(gated);  // one preparation at a time
  Recorder first, second;
  auto h1 = preparer.Start(Request("sha256:" + Hex64('a'), "sha256:" + Hex64('7')),
                           first.Progress(), first.Done());
  first_running.WaitForNotification();
  auto h2 = preparer.Start(Request("sha256:" + Hex64('a')), second.Progress(), second.Done());
  h2->Cancel();  // still queued behind the first
  release.Notify();
  const auto& r1 = first.Wait();
  EXPECT_EQ(r1.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r1.status().message()), HasSubstr("spec.test_dataset_id"));
  EXPECT_EQ(second.Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(second.progress.empty()) << "a cancelled preparation reports nothing";
}

// A real registry over <tmp>/data/set: class folders "a" and "b" of small PNGs, the last file of
// the last class (in load order) truncated.
class PreparerEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("preparer-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    for (const std::string cls : {"a", "b"}) {
      fs::create_directories(dir_ / "data" / "set" / cls);
      for (int i = 0; i < 4; ++i) {
        cv::Mat img(8, 8, CV_8UC3, cv::Scalar(40 * i, cls == "a" ? 200 : 20, 90));
        ASSERT_TRUE(cv::imwrite(
            (dir_ / "data" / "set" / cls / (std::to_string(i) + ".png")).string(), img));
      }
    }
    // The last image: a PNG cut after its first bytes.
    const fs::path last = dir_ / "data" / "set" / "b" / "zz-last.png";
    ASSERT_TRUE(cv::imwrite(last.string(), cv::Mat(8, 8, CV_8UC3, cv::Scalar(1, 2, 3))));
    std::ifstream in(last, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    std::ofstream(last, std::ios::binary | std::ios::trunc) << bytes.substr(0, 20);

    DatasetRegistryOptions options;
    options.state_dir = (dir_ / "state").string();
    options.data_dir = (dir_ / "data").string();
    registry_ = std::make_unique<DatasetRegistry>(options);
    ASSERT_TRUE(registry_->Init().ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::unique_ptr<DatasetRegistry> registry_;
};

TEST_F(PreparerEndToEndTest, ACorruptLastImageFailsTheJobNamingTheFile) {
  auto info = registry_->RegisterPath("set");
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->num_images(), 9);

  DatasetRegistry* registry = registry_.get();
  auto preparer = std::make_unique<ThreadPreparer>(
      [registry](const std::string& id, const InputShape& input,
                 const ImagesProgress&) -> absl::StatusOr<PreparedDataset> {
        auto d = registry->Decode(id, input);
        if (!d.ok()) return d.status();
        return PreparedDataset{*std::move(d), false, 0.0};
      });
  MemoryStore store;
  FakeConnector connector;
  CoordinatorDeps deps;
  deps.store = &store;
  deps.connector = &connector;
  deps.lookup = [registry](const std::string& id) { return registry->Get(id); };
  deps.preparer = preparer.get();
  deps.resource_model = FakeResources();
  auto core = std::make_unique<Coordinator>(CoordinatorOptions{}, deps);

  v1::JobSpec spec = GoodSpec();
  spec.set_dataset_id(info->id());
  auto job = core->SubmitJob(spec, "e2e-1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  // Follow the watch stream until the job ends.
  Coordinator::WatchCursor cursor;
  bool ended = false;
  for (int i = 0; i < 100 && !ended; ++i) {
    ASSERT_TRUE(core->NextEvents(job->id(), &cursor, absl::Seconds(30), &ended).ok());
  }
  ASSERT_TRUE(ended);
  auto failed = core->GetJob(job->id());
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed->error(), HasSubstr("zz-last.png"));
  EXPECT_TRUE(connector.calls.empty());
  core->Shutdown();
  preparer.reset();
  core.reset();
}

}  // namespace
}  // namespace nanonas::coordinator::testing
