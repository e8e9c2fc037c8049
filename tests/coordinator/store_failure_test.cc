// A store that refuses a commit fails the operation that caused it: the change is not applied in
// memory, the job ends FAILED with the store's error, and a client's call returns that error.
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "tests/support/coordinator_fakes.h"
#include "tests/support/memory_store.h"

namespace nanonas::coordinator::testing {
namespace {

using ::testing::HasSubstr;

TEST(CoordinatorStoreFailureTest, SubmitReturnsTheStoreErrorWhenTheJobCannotBeSaved) {
  FailingStore store;
  Harness h(&store);
  h.AddWorker("w1");
  store.FailAfter(0);
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_FALSE(job.ok());
  EXPECT_EQ(job.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("disk full"));
  EXPECT_TRUE(h.core->ListJobs({}, 0)->empty());
  EXPECT_TRUE(h.connector.calls.empty());
}

TEST(CoordinatorStoreFailureTest, AFailedCommitDuringThePreparationFailsTheJobNotTheSubmit) {
  FailingStore store;
  Harness h(&store);
  h.AddWorker("w1");
  store.FailAfter(1);  // the QUEUED record is saved, the move to PREPARING is not
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok()) << "the job was made durable: the client must learn its id";
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  auto jobs = h.core->ListJobs({}, 0);
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT((*jobs)[0].error(), HasSubstr("disk full"));
  EXPECT_EQ(h.core->RunningEvaluations(), 0);
  EXPECT_TRUE(h.connector.calls.empty());
}

TEST(CoordinatorStoreFailureTest, AResultThatCannotBeSavedIsNotAppliedAndTheJobFails) {
  FailingStore store;
  Harness h(&store);
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(h.connector.Open().size(), 1u);
  store.FailAfter(0);
  FakeConnector::Complete(h.connector.Open()[0], 0.5);
  auto after = h.core->GetJob(job->id());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(after->error(), HasSubstr("disk full"));
  ASSERT_EQ(after->candidates_size(), 1);
  EXPECT_EQ(after->candidates(0).state(), v1::CANDIDATE_STATE_RUNNING)
      << "the result was not applied: the store never accepted it";
  EXPECT_EQ(after->candidates(0).best_validation_accuracy(), 0);
  // The store still has the job running; a restart resumes it.
  store.Heal();
  auto saved = store.LoadJobs();
  ASSERT_TRUE(saved.ok());
  EXPECT_EQ((*saved)[0].state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(h.core->RunningEvaluations(), 0);
}

TEST(CoordinatorStoreFailureTest, CancelReturnsTheStoreError) {
  FailingStore store;
  Harness h(&store);
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  store.FailAfter(0);
  auto cancelled = h.core->CancelJob(job->id());
  ASSERT_FALSE(cancelled.ok());
  EXPECT_THAT(std::string(cancelled.status().message()), HasSubstr("disk full"));
  EXPECT_EQ(h.core->GetJob(job->id())->state(), v1::JOB_STATE_FAILED);
}

}  // namespace
}  // namespace nanonas::coordinator::testing
