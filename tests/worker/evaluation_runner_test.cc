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
        [this](const std::string& id, const DatasetCache::ChunkSink& sink) {
          ++fetches_;
          if (id != dataset_id_) return absl::NotFoundError("unknown dataset");
          return sink(dataset_);
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
  EXPECT_GT(result->peak_memory_bytes(), 0);     // the child's VmHWM
  EXPECT_GT(result->peak_anonymous_bytes(), 0);  // its RssAnon, sampled
  EXPECT_LE(result->peak_anonymous_bytes(), result->peak_memory_bytes());
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
  EXPECT_THAT(result->error(), HasSubstr("anonymous memory"));
  EXPECT_THAT(result->error(), HasSubstr("exceeded the budget"));
  EXPECT_GT(result->peak_anonymous_bytes(), budget);
  EXPECT_GT(result->peak_memory_bytes(), budget);
  EXPECT_LT(result->peak_memory_bytes(), 4 * budget);  // killed early, not at 4 GiB
  EXPECT_THAT(MetricsText(), HasSubstr("nanonas_worker_evaluation_peak_anonymous_bytes_count 1"));
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

// The threads the child was told to train with (the fake child echoes them in its progress).
int GrantedThreads(const nanonas::v1::EvaluateEvent& e) {
  return e.has_progress() ? e.progress().batches_per_epoch() : -1;
}

TEST_F(WorkerEvaluationRunnerTest, AFinalTrainingTakesAsManySlotsAsThreads) {
  auto runner = MakeRunner(2, 0);
  auto final_training = Request(4);  // runs until cancelled
  final_training.set_final_training(true);
  final_training.set_threads(2);
  int busy_while_running = -1, granted = -1;
  absl::StatusOr<nanonas::v1::EvaluateResult> refused = absl::UnknownError("not run");
  bool cancel = false;
  auto result = runner->Run(
      final_training,
      [&](const nanonas::v1::EvaluateEvent& e) {
        // Called on Run's thread while the child runs: both slots are held now.
        busy_while_running = runner->busy_slots();
        granted = GrantedThreads(e);
        refused = runner->Run(Request(1), nullptr, nullptr);
        cancel = true;
      },
      [&] { return cancel; });
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->state(), nanonas::v1::CANDIDATE_STATE_CANCELLED);
  EXPECT_EQ(busy_while_running, 2);
  EXPECT_EQ(granted, 2);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(runner->busy_slots(), 0);  // all released
}

TEST_F(WorkerEvaluationRunnerTest, ThreadsAreGrantedUpToTheFreeSlots) {
  auto runner = MakeRunner(2, 0);
  auto candidate = Request(4);  // one slot, runs until cancelled
  int busy_inside = -1, granted_inside = -1, granted_outside = -1;
  bool cancel = false;
  auto outer = runner->Run(
      candidate,
      [&](const nanonas::v1::EvaluateEvent& e) {
        granted_outside = GrantedThreads(e);
        auto wants_two = Request(1);
        wants_two.set_final_training(true);
        wants_two.set_threads(2);
        auto inner = runner->Run(
            wants_two,
            [&](const nanonas::v1::EvaluateEvent& ev) {
              if (!ev.has_progress()) return;
              busy_inside = runner->busy_slots();
              granted_inside = GrantedThreads(ev);
            },
            nullptr);
        EXPECT_TRUE(inner.ok()) << inner.status();
        cancel = true;
      },
      [&] { return cancel; });
  ASSERT_TRUE(outer.ok());
  EXPECT_EQ(granted_outside, 1);  // threads 0 = 1
  EXPECT_EQ(granted_inside, 1);   // one slot was free
  EXPECT_EQ(busy_inside, 2);
  EXPECT_EQ(runner->busy_slots(), 0);
  EXPECT_THAT(MetricsText(), HasSubstr("nanonas_worker_busy_slots 0"));
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
