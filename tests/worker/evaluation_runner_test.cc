// The runner's process isolation, driven by a fake child that crashes, leaks memory or hangs on
// demand (fake_evaluation_child.cc).
#include "worker/service/evaluation_runner.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace nanonas {
namespace {

using nanonas::v1::CandidateState;
using testing::HasSubstr;

class WorkerEvaluationRunnerTest : public testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    dir_ = (std::filesystem::temp_directory_path() /
            ("nanonas-runner-test-" + std::to_string(getpid())))
               .string();
    std::filesystem::remove_all(dir_);
    cache_ = std::make_unique<DatasetCache>(dir_, 1 << 20);
    ASSERT_TRUE(cache_->Init().ok());
    dataset_ = "pretend dataset bytes";
    dataset_id_ = "sha256:" + Sha256Hex(dataset_);
    metrics_ = std::make_unique<WorkerMetrics>(registry_);
  }

  void TearDown() override {
    cache_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<EvaluationRunner> MakeRunner(int slots, int64_t budget) {
    EvaluationRunnerOptions o;
    o.child_command = {FAKE_CHILD_PATH};
    o.slots = slots;
    o.memory_budget_bytes = budget;
    o.rss_poll_ms = 20;
    return std::make_unique<EvaluationRunner>(
        o, cache_.get(),
        [this](const std::string& id) -> absl::StatusOr<std::string> {
          ++fetches_;
          if (id != dataset_id_) return absl::NotFoundError("unknown dataset");
          return dataset_;
        },
        metrics_.get());
  }

  nanonas::v1::EvaluateRequest Request(int k) {
    nanonas::v1::EvaluateRequest r;
    r.set_job_id("job");
    r.set_evaluation_id("eval-" + std::to_string(k));
    r.set_dataset_id(dataset_id_);
    r.mutable_input()->set_height(16);
    r.mutable_input()->set_width(16);
    r.mutable_input()->set_channels(3);
    r.set_k(k);
    r.set_c(0);
    return r;
  }

  std::string MetricsText() { return prometheus::TextSerializer().Serialize(registry_.Collect()); }

  std::string dir_, dataset_, dataset_id_;
  std::unique_ptr<DatasetCache> cache_;
  prometheus::Registry registry_;
  std::unique_ptr<WorkerMetrics> metrics_;
  int fetches_ = 0;
};

TEST_F(WorkerEvaluationRunnerTest, RelaysEventsAndTheChildsResult) {
  auto runner = MakeRunner(1, 0);
  std::vector<nanonas::v1::EvaluateEvent> events;
  auto result = runner->Run(
      Request(1), [&](const auto& e) { events.push_back(e); }, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->state(), nanonas::v1::CANDIDATE_STATE_DONE) << result->error();
  EXPECT_EQ(result->error(), "");  // the child found its dataset file
  EXPECT_DOUBLE_EQ(result->best_validation_accuracy(), 0.75);
  EXPECT_GT(result->peak_memory_bytes(), 0);  // wait4's ru_maxrss of the child
  EXPECT_GT(result->duration_seconds(), 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0].has_progress());
  EXPECT_TRUE(events[1].has_epoch());
  EXPECT_THAT(MetricsText(), HasSubstr("nanonas_worker_evaluations_total{outcome=\"done\"} 1"));
}

TEST_F(WorkerEvaluationRunnerTest, ACrashingChildFailsAndTheRunnerKeepsServing) {
  auto runner = MakeRunner(1, 0);
  auto crashed = runner->Run(Request(2), nullptr, nullptr);
  ASSERT_TRUE(crashed.ok());
  EXPECT_EQ(crashed->state(), nanonas::v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(crashed->error(), HasSubstr("signal 11"));
  auto exited = runner->Run(Request(5), nullptr, nullptr);
  ASSERT_TRUE(exited.ok());
  EXPECT_EQ(exited->state(), nanonas::v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(exited->error(), HasSubstr("exited with status 7 without a result"));
  auto garbage = runner->Run(Request(6), nullptr, nullptr);
  ASSERT_TRUE(garbage.ok());
  EXPECT_EQ(garbage->state(), nanonas::v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(garbage->error(), HasSubstr("exceeds the limit"));
  auto fine = runner->Run(Request(1), nullptr, nullptr);
  ASSERT_TRUE(fine.ok());
  EXPECT_EQ(fine->state(), nanonas::v1::CANDIDATE_STATE_DONE);
  EXPECT_EQ(runner->busy_slots(), 0);
  EXPECT_EQ(fetches_, 1);  // one download, then the cache
  EXPECT_THAT(MetricsText(), HasSubstr("nanonas_worker_evaluations_total{outcome=\"failed\"} 3"));
}

TEST_F(WorkerEvaluationRunnerTest, AChildOverTheMemoryBudgetIsKilledHostInfeasible) {
  const int64_t budget = 200LL << 20;
  auto runner = MakeRunner(1, budget);
  auto result = runner->Run(Request(3), nullptr, nullptr);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->state(), nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE) << result->error();
  EXPECT_THAT(result->error(), HasSubstr("exceeded the budget"));
  EXPECT_GT(result->peak_memory_bytes(), budget);
  EXPECT_LT(result->peak_memory_bytes(), 4 * budget);  // killed early, not at 4 GiB
}

TEST_F(WorkerEvaluationRunnerTest, TheJobsHostMemoryLowersTheBudget) {
  auto runner = MakeRunner(1, 8LL << 30);
  auto request = Request(3);
  request.set_host_memory_bytes(150LL << 20);
  EXPECT_EQ(runner->EffectiveBudget(request), 150LL << 20);
  auto result = runner->Run(request, nullptr, nullptr);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->state(), nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE);
}

TEST_F(WorkerEvaluationRunnerTest, CancelKillsTheChild) {
  auto runner = MakeRunner(1, 0);
  std::atomic<bool> cancel{false};
  std::atomic<bool> started{false};
  std::thread canceller([&] {
    while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancel = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  auto result = runner->Run(
      Request(4), [&](const auto&) { started = true; }, [&] { return cancel.load(); });
  canceller.join();
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->state(), nanonas::v1::CANDIDATE_STATE_CANCELLED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST_F(WorkerEvaluationRunnerTest, AChildHangingAfterClosingItsOutputIsKilled) {
  auto runner = MakeRunner(1, 0);
  auto t0 = std::chrono::steady_clock::now();
  auto result = runner->Run(Request(7), nullptr, nullptr);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->state(), nanonas::v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(result->error(), HasSubstr("did not exit"));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

TEST_F(WorkerEvaluationRunnerTest, MoreEvaluationsThanSlotsAreRefused) {
  auto runner = MakeRunner(1, 0);
  std::atomic<bool> started{false}, cancel{false};
  absl::StatusOr<nanonas::v1::EvaluateResult> first = absl::UnknownError("not run");
  std::thread t([&] {
    first = runner->Run(
        Request(4), [&](const auto&) { started = true; }, [&] { return cancel.load(); });
  });
  while (!started) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto second = runner->Run(Request(1), nullptr, nullptr);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("slots"));
  cancel = true;
  t.join();
  EXPECT_EQ(first->state(), nanonas::v1::CANDIDATE_STATE_CANCELLED);
  auto third = runner->Run(Request(1), nullptr, nullptr);  // the slot is free again
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->state(), nanonas::v1::CANDIDATE_STATE_DONE);
}

TEST_F(WorkerEvaluationRunnerTest, BadRequestsAndMissingDatasets) {
  auto runner = MakeRunner(1, 0);
  auto bad = Request(0);
  EXPECT_EQ(runner->Run(bad, nullptr, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  auto no_input = Request(1);
  no_input.mutable_input()->set_height(0);
  EXPECT_THAT(std::string(runner->Run(no_input, nullptr, nullptr).status().message()),
              HasSubstr("input size"));
  auto bad_id = Request(1);
  bad_id.set_dataset_id("../etc/passwd");
  EXPECT_EQ(runner->Run(bad_id, nullptr, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto unknown = Request(1);
  unknown.set_dataset_id("sha256:" + std::string(64, 'e'));
  auto r = runner->Run(unknown, nullptr, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->state(), nanonas::v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(r->error(), HasSubstr("unknown dataset"));
}

}  // namespace
}  // namespace nanonas
