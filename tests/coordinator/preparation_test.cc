// A job's dataset preparation and idempotent submission, with a fake preparer whose preparations
// finish only when the test says so (no threads, a manual clock).
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::coordinator::testing {
namespace {

using ::testing::HasSubstr;

const std::string kTrain = "sha256:" + Hex64('a');

v1::JobState StateOf(Harness& h, const std::string& id) {
  auto job = h.core->GetJob(id);
  return job.ok() ? job->state() : v1::JOB_STATE_UNSPECIFIED;
}

TEST(CoordinatorPreparationTest, SubmitAnswersQueuedThenTheJobPreparesWithProgressThenRuns) {
  Harness h;
  h.AddWorker("w1");
  h.preparer.hold = true;
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(job->evaluation_dataset_id().empty()) << "nothing decoded yet";
  ASSERT_EQ(h.preparer.calls.size(), 1u);
  auto call = h.preparer.calls[0];
  EXPECT_EQ(call->request.dataset_id, kTrain);
  EXPECT_EQ(call->request.input.height, 50);
  EXPECT_EQ(StateOf(h, job->id()), v1::JOB_STATE_QUEUED);
  EXPECT_TRUE(h.connector.calls.empty());

  FakePreparer::Report(call, kTrain, 0, 300);
  FakePreparer::Report(call, kTrain, 120, 300);
  auto preparing = h.core->GetJob(job->id());
  ASSERT_TRUE(preparing.ok());
  EXPECT_EQ(preparing->state(), v1::JOB_STATE_PREPARING);
  EXPECT_EQ(preparing->preparation().dataset_id(), kTrain);
  EXPECT_EQ(preparing->preparation().images_done(), 120);
  EXPECT_EQ(preparing->preparation().images_total(), 300);
  EXPECT_TRUE(h.connector.calls.empty()) << "no candidate before the dataset is ready";

  h.preparer.Finish(call);
  auto running = h.core->GetJob(job->id());
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state(), v1::JOB_STATE_RUNNING) << running->error();
  EXPECT_EQ(running->evaluation_dataset_id(), Hex64('d'));
  EXPECT_EQ(running->num_classes(), 2);
  EXPECT_EQ(running->num_images(), 300);
  ASSERT_EQ(h.connector.Open().size(), 1u);
  EXPECT_EQ(h.connector.Open()[0]->request.dataset_id(), Hex64('d'));
  // The states were persisted in order: QUEUED, PREPARING, RUNNING.
  auto events = h.store->LoadEvents(job->id(), 0);
  ASSERT_TRUE(events.ok());
  std::vector<v1::JobState> states;
  for (const auto& e : *events) {
    if (e.kind_case() == v1::JobEvent::kJobState) states.push_back(e.job_state());
  }
  EXPECT_THAT(states, ::testing::ElementsAre(v1::JOB_STATE_QUEUED, v1::JOB_STATE_PREPARING,
                                             v1::JOB_STATE_RUNNING));
}

TEST(CoordinatorPreparationTest, WatchersSeeThePreparationProgress) {
  Harness h;
  h.preparer.hold = true;
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  Coordinator::WatchCursor cursor;
  bool ended = false;
  ASSERT_TRUE(h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended).ok());
  auto call = h.preparer.calls[0];
  FakePreparer::Report(call, kTrain, 0, 300);
  FakePreparer::Report(call, kTrain, 300, 300);
  auto events = h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended);
  ASSERT_TRUE(events.ok());
  int64_t last_done = -1;
  bool preparing_state = false;
  for (const auto& e : *events) {
    if (e.has_preparation()) last_done = e.preparation().images_done();
    preparing_state |= e.job_state() == v1::JOB_STATE_PREPARING;
  }
  EXPECT_TRUE(preparing_state);
  EXPECT_EQ(last_done, 300) << "the last progress always reaches watchers";
  h.preparer.Finish(call);
}

TEST(CoordinatorPreparationTest, LiveProgressIsThrottledPerJobButEachDatasetsFirstAndLastCome) {
  Harness h;
  h.preparer.hold = true;
  v1::JobSpec spec = GoodSpec();
  spec.set_test_dataset_id("sha256:" + Hex64('b'));
  auto job = h.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok());
  Coordinator::WatchCursor cursor;
  bool ended = false;
  ASSERT_TRUE(h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended).ok());
  auto call = h.preparer.calls[0];
  const std::string test = "sha256:" + Hex64('b');
  FakePreparer::Report(call, kTrain, 0, 300);
  FakePreparer::Report(call, kTrain, 10, 300);  // same instant: dropped
  FakePreparer::Report(call, kTrain, 20, 300);  // dropped
  h.now += absl::Seconds(1);
  FakePreparer::Report(call, kTrain, 30, 300);                 // a second later: sent
  FakePreparer::Report(call, kTrain, 300, 300);                // the last: sent
  FakePreparer::Report(call, test, 0, 50, /*test_set=*/true);  // the next dataset: sent
  FakePreparer::Report(call, test, 5, 50, true);               // dropped
  auto events = h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended);
  ASSERT_TRUE(events.ok());
  std::vector<std::pair<bool, int64_t>> sent;  // (test set, images done)
  for (const auto& e : *events) {
    if (e.has_preparation()) {
      sent.emplace_back(e.preparation().test_set(), e.preparation().images_done());
    }
  }
  EXPECT_THAT(sent, ::testing::ElementsAre(
                        std::make_pair(false, int64_t{0}), std::make_pair(false, int64_t{30}),
                        std::make_pair(false, int64_t{300}), std::make_pair(true, int64_t{0})));
  // GetJob has every report, throttled or not.
  EXPECT_EQ(h.core->GetJob(job->id())->preparation().images_done(), 5);
  h.preparer.Finish(call);
}

TEST(CoordinatorPreparationTest, ARepeatedRequestIdReturnsTheSameJobAlsoAfterARestart) {
  MemoryStore store;
  std::string id;
  {
    Harness h(&store);
    h.preparer.hold = true;
    auto first = h.core->SubmitJob(GoodSpec(), "req-1");
    ASSERT_TRUE(first.ok()) << first.status();
    id = first->id();
    EXPECT_EQ(first->request_id(), "req-1");
    auto again = h.core->SubmitJob(GoodSpec(), "req-1");
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->id(), id);
    EXPECT_EQ(h.preparer.calls.size(), 1u) << "nothing new was prepared";
    v1::JobSpec other = GoodSpec();
    other.set_name("another");
    auto conflict = h.core->SubmitJob(other, "req-1");
    EXPECT_EQ(conflict.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(conflict.status().message()), HasSubstr(id));
    // No request id: not idempotent.
    auto a = h.core->SubmitJob(GoodSpec());
    auto b = h.core->SubmitJob(GoodSpec());
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NE(a->id(), b->id());
    EXPECT_EQ(h.core->SubmitJob(GoodSpec(), std::string(129, 'x')).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(h.core->SubmitJob(GoodSpec(), "tab\there").status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  auto stored = store.LoadJobs();
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->size(), 3u) << "req-1 once, two without an id";
  Harness restarted(&store);
  ASSERT_TRUE(restarted.core->Recover().ok());
  auto after = restarted.core->SubmitJob(GoodSpec(), "req-1");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->id(), id);
  EXPECT_EQ(store.LoadJobs()->size(), 3u) << "nothing new in the store";
  v1::JobSpec other = GoodSpec();
  other.mutable_input()->set_height(40);
  EXPECT_EQ(restarted.core->SubmitJob(other, "req-1").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(CoordinatorPreparationTest, AFailedPreparationFailsItsJobNamingTheFileAndNothingElse) {
  Harness h;
  h.AddWorker("w1");
  h.preparer.hold = true;
  auto bad = h.core->SubmitJob(GoodSpec());
  auto good = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(bad.ok() && good.ok());
  ASSERT_EQ(h.preparer.calls.size(), 2u);
  FakePreparer::Report(h.preparer.calls[0], kTrain, 0, 300);
  FakePreparer::End(
      h.preparer.calls[0],
      absl::InvalidArgumentError("dataset " + kTrain + ": image 'cat/x.png' is corrupt"));
  auto failed = h.core->GetJob(bad->id());
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed->error(), HasSubstr("image 'cat/x.png' is corrupt"));
  EXPECT_TRUE(failed->has_finished());
  EXPECT_TRUE(h.connector.calls.empty());

  h.preparer.Finish(h.preparer.calls[1]);
  EXPECT_EQ(StateOf(h, good->id()), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(h.connector.Open().size(), 1u);
  EXPECT_EQ(h.connector.Open()[0]->request.job_id(), good->id());
}

TEST(CoordinatorPreparationTest, ChecksThatNeedTheDecodedSetFailTheJob) {
  Harness h;
  h.preparer.hold = true;
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  // The registry's record said 2 classes; the decoded set has 1.
  PreparationResult one_class;
  one_class.train.dataset.id = Hex64('e');
  one_class.train.dataset.num_images = 300;
  one_class.train.dataset.class_names = {"only"};
  FakePreparer::End(h.preparer.calls[0], one_class);
  auto failed = h.core->GetJob(job->id());
  EXPECT_EQ(failed->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(failed->error(), HasSubstr("at least 2"));
}

TEST(CoordinatorPreparationTest, CancelWhilePreparingCancelsThePreparationAndIgnoresItsResult) {
  Harness h;
  h.AddWorker("w1");
  h.preparer.hold = true;
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  auto call = h.preparer.calls[0];
  FakePreparer::Report(call, kTrain, 10, 300);
  ASSERT_EQ(StateOf(h, job->id()), v1::JOB_STATE_PREPARING);
  auto cancelled = h.core->CancelJob(job->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(call->cancelled);
  h.preparer.Finish(call);  // the late result
  EXPECT_EQ(StateOf(h, job->id()), v1::JOB_STATE_CANCELLED);
  EXPECT_TRUE(h.connector.calls.empty());
  // A queued job (no progress yet) cancels the same way.
  auto queued = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(queued.ok());
  ASSERT_TRUE(h.core->CancelJob(queued->id()).ok());
  EXPECT_TRUE(h.preparer.calls[1]->cancelled);
  FakePreparer::End(h.preparer.calls[1], absl::CancelledError("dropped"));
  EXPECT_EQ(StateOf(h, queued->id()), v1::JOB_STATE_CANCELLED);
}

TEST(CoordinatorPreparationTest, RecoveryOfAQueuedOrPreparingJobPreparesAgainAndRuns) {
  MemoryStore store;
  std::string preparing_id, queued_id;
  {
    Harness h(&store);
    h.preparer.hold = true;
    auto a = h.core->SubmitJob(GoodSpec());
    auto b = h.core->SubmitJob(GoodSpec());
    ASSERT_TRUE(a.ok() && b.ok());
    preparing_id = a->id();
    queued_id = b->id();
    FakePreparer::Report(h.preparer.calls[0], kTrain, 100, 300);
    ASSERT_EQ(StateOf(h, preparing_id), v1::JOB_STATE_PREPARING);
    h.Crash();
  }
  Harness h(&store);
  h.AddWorker("w1", 2);
  h.preparer.hold = true;
  ASSERT_TRUE(h.core->Recover().ok());
  ASSERT_EQ(h.preparer.calls.size(), 2u) << "both prepare again";
  EXPECT_EQ(StateOf(h, preparing_id), v1::JOB_STATE_PREPARING);
  EXPECT_EQ(StateOf(h, queued_id), v1::JOB_STATE_QUEUED);
  for (const auto& call : h.preparer.calls) h.preparer.Finish(call);
  EXPECT_EQ(StateOf(h, preparing_id), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(StateOf(h, queued_id), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(h.connector.Open().size(), 2u);
}

TEST(CoordinatorPreparationTest, SubmitChecksTheRegistrysRecordsAtOnce) {
  Harness h;
  h.preparer.hold = true;
  v1::JobSpec unknown = GoodSpec();
  unknown.set_dataset_id("sha256:" + Hex64('7'));
  EXPECT_EQ(h.core->SubmitJob(unknown).status().code(), absl::StatusCode::kNotFound);
  v1::JobSpec one_class = GoodSpec();
  one_class.set_dataset_id("sha256:" + Hex64('1'));
  EXPECT_EQ(h.core->SubmitJob(one_class).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(h.preparer.calls.empty()) << "a refused job is never prepared";
  EXPECT_TRUE(h.core->ListJobs({}, 0)->empty());
}

}  // namespace
}  // namespace nanonas::coordinator::testing
