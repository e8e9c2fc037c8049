// JobRecord: every state change goes through a guarded transition that refuses illegal moves
// (leaving the record unchanged) and returns the event to persist.
#include "server/coordinator/job_record.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas::coordinator {
namespace {

namespace v1 = nanonas::v1;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

JobRecord RunningJob() {
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->mutable_constraints()->set_host_memory_bytes(1000);
  return JobRecord(job);
}

PathEntry Entry(int k, int c, Outcome outcome = Outcome::kDone) {
  PathEntry e;
  e.k = k;
  e.c = c;
  e.outcome = outcome;
  return e;
}

TEST(JobRecordTest, JobMovesFollowTheLegalPathsAndReturnTheStateEvent) {
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_QUEUED);
  JobRecord record(job);
  EXPECT_EQ(record.MoveJob(v1::JOB_STATE_RUNNING, "", kNow).status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "a job runs only once its dataset is prepared";
  ASSERT_TRUE(record.MoveJob(v1::JOB_STATE_PREPARING, "", kNow).ok());
  EXPECT_FALSE(record.job().has_started());
  auto ev = record.MoveJob(v1::JOB_STATE_RUNNING, "", kNow);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->job_state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(ev->job().state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(record.job().has_started());

  auto back = record.MoveJob(v1::JOB_STATE_QUEUED, "", kNow);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(back.status().message()), HasSubstr("JOB_STATE_RUNNING"));
  EXPECT_EQ(record.state(), v1::JOB_STATE_RUNNING);

  ASSERT_TRUE(record.MoveJob(v1::JOB_STATE_FAILED, "broken", kNow).ok());
  EXPECT_EQ(record.job().error(), "broken");
  EXPECT_EQ(record.MoveJob(v1::JOB_STATE_SUCCEEDED, "", kNow).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.state(), v1::JOB_STATE_FAILED);
}

TEST(JobRecordTest, CandidateLifeCycleRefusesIllegalMovesWithoutChangingTheRecord) {
  JobRecord record = RunningJob();
  const int i = record.AddCandidate(Entry(1, 0));
  const EvalTarget t = EvalTarget::Candidate(i);
  EXPECT_EQ(record.StateOf(t), v1::CANDIDATE_STATE_PENDING);

  // A result for a candidate that is not running is refused.
  v1::EvaluateResult done;
  done.set_state(v1::CANDIDATE_STATE_DONE);
  done.set_best_validation_accuracy(0.5);
  EXPECT_EQ(record.ApplyCandidateResult(i, done, "w", 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.FailAttempt(t, "x", 1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.Requeue(t, "x", false).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.StateOf(t), v1::CANDIDATE_STATE_PENDING);
  EXPECT_EQ(record.AttemptsOf(t), 0);

  auto started = record.StartAttempt(t, "w1");
  ASSERT_TRUE(started.ok());
  EXPECT_EQ(started->candidate().state(), v1::CANDIDATE_STATE_RUNNING);
  EXPECT_EQ(started->candidate().worker(), "w1");
  EXPECT_EQ(started->candidate().attempts(), 1);
  EXPECT_EQ(record.StartAttempt(t, "w2").status().code(), absl::StatusCode::kFailedPrecondition);

  auto requeued = record.Requeue(t, "retrying: lost", /*refund=*/false);
  ASSERT_TRUE(requeued.ok());
  EXPECT_EQ(requeued->candidate().state(), v1::CANDIDATE_STATE_PENDING);
  EXPECT_EQ(requeued->candidate().worker(), "");
  EXPECT_EQ(requeued->candidate().error(), "retrying: lost");
  EXPECT_EQ(requeued->candidate().attempts(), 1);

  ASSERT_TRUE(record.StartAttempt(t, "w2").ok());
  auto finished = record.ApplyCandidateResult(i, done, "w2", 2);
  ASSERT_TRUE(finished.ok());
  EXPECT_EQ(finished->candidate().state(), v1::CANDIDATE_STATE_DONE);
  EXPECT_EQ(finished->candidate().attempts(), 2);
  // Final states are final.
  EXPECT_EQ(record.Cancel(t, "cancelled").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.StartAttempt(t, "w3").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.StateOf(t), v1::CANDIDATE_STATE_DONE);
  EXPECT_EQ(record.MoveCandidate(7, v1::CANDIDATE_STATE_RUNNING).status().code(),
            absl::StatusCode::kInternal);
}

TEST(JobRecordTest, AnUnknownWorkerStateFailsTheCandidateAndHostInfeasibleGetsItsViolation) {
  JobRecord record = RunningJob();
  const int a = record.AddCandidate(Entry(1, 0));
  ASSERT_TRUE(record.StartAttempt(EvalTarget::Candidate(a), "w").ok());
  v1::EvaluateResult odd;
  odd.set_state(v1::CANDIDATE_STATE_INFEASIBLE);
  auto ev = record.ApplyCandidateResult(a, odd, "w", 1);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->candidate().state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(ev->candidate().error(), HasSubstr("worker returned state"));

  const int b = record.AddCandidate(Entry(1, 1));
  ASSERT_TRUE(record.StartAttempt(EvalTarget::Candidate(b), "w").ok());
  v1::EvaluateResult big;
  big.set_state(v1::CANDIDATE_STATE_HOST_INFEASIBLE);
  big.set_peak_memory_bytes(1500);
  ev = record.ApplyCandidateResult(b, big, "w", 1);
  ASSERT_TRUE(ev.ok());
  ASSERT_EQ(ev->candidate().violations_size(), 1);
  EXPECT_EQ(ev->candidate().violations(0).excess(), 500);
}

TEST(JobRecordTest, SettledCandidatesMustBeFinalAndDescribeTheirViolations) {
  JobRecord record = RunningJob();
  PathEntry e = Entry(2, 0, Outcome::kInfeasible);
  e.violations.push_back(Violation{"ram_bytes", 3000, 2000, 1000});
  auto ev = record.AddSettledCandidate(e);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->candidate().state(), v1::CANDIDATE_STATE_INFEASIBLE);
  EXPECT_THAT(ev->candidate().error(), HasSubstr("ram_bytes"));
  EXPECT_THAT(ev->candidate().error(), HasSubstr("exceeds the limit"));
  EXPECT_EQ(record.job().candidates_size(), 1);
}

TEST(JobRecordTest, FinalTrainingSharesTheLifeCycleAndIsQueuedOnce) {
  JobRecord record = RunningJob();
  const EvalTarget f = EvalTarget::Final();
  EXPECT_EQ(record.StartAttempt(f, "w").status().code(), absl::StatusCode::kFailedPrecondition);
  auto queued = record.QueueFinal(2, 1, 100);
  ASSERT_TRUE(queued.ok());
  EXPECT_EQ(queued->final_training().state(), v1::CANDIDATE_STATE_PENDING);
  EXPECT_EQ(queued->final_training().epochs_planned(), 100);
  EXPECT_EQ(record.QueueFinal(2, 1, 100).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.ResumeFinal().status().code(), absl::StatusCode::kFailedPrecondition);

  ASSERT_TRUE(record.StartAttempt(f, "w").ok());
  EXPECT_EQ(record.AttemptsOf(f), 1);
  // A busy worker gives the attempt back.
  ASSERT_TRUE(record.Requeue(f, "", /*refund=*/true).ok());
  EXPECT_EQ(record.AttemptsOf(f), 0);
  EXPECT_EQ(record.StateOf(f), v1::CANDIDATE_STATE_PENDING);

  ASSERT_TRUE(record.StartAttempt(f, "w").ok());
  v1::SearchResult result;
  result.set_found(true);
  result.set_flash_bytes(1000);
  record.SetResult(result);
  v1::EvaluateResult r;
  r.set_state(v1::CANDIDATE_STATE_DONE);
  r.set_tflite(std::string(1004, 'x'));
  std::string problem;
  auto ev = record.ApplyFinalResult(r, "w", 3, &problem);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->final_training().state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(problem, HasSubstr("1004 bytes"));
  // After a restart a finished-but-unended final training trains again.
  auto resumed = record.ResumeFinal();
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->final_training().state(), v1::CANDIDATE_STATE_PENDING);
}

TEST(JobRecordTest, RollbackReturnsToTheLastDurableRecord) {
  JobRecord record = RunningJob();
  const int i = record.AddCandidate(Entry(1, 0));
  record.MarkDurable();
  ASSERT_TRUE(record.StartAttempt(EvalTarget::Candidate(i), "w").ok());
  ASSERT_TRUE(record.MoveJob(v1::JOB_STATE_CANCELLED, "", kNow).ok());
  record.Rollback();
  EXPECT_EQ(record.state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(record.StateOf(EvalTarget::Candidate(i)), v1::CANDIDATE_STATE_PENDING);
}

TEST(JobRecordTest, WaitsForWorkerWhenTheLastCandidateOrTheFinalTrainingIsPending) {
  JobRecord record = RunningJob();
  EXPECT_FALSE(record.WaitsForWorker());
  const int i = record.AddCandidate(Entry(1, 0));
  EXPECT_TRUE(record.WaitsForWorker());
  ASSERT_TRUE(record.StartAttempt(EvalTarget::Candidate(i), "w").ok());
  EXPECT_FALSE(record.WaitsForWorker());
  ASSERT_TRUE(record.QueueFinal(1, 0, 10).ok());
  EXPECT_TRUE(record.WaitsForWorker());
}

TEST(JobRecordTest, PreparationFieldsAreSetOnlyWhilePreparing) {
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_QUEUED);
  JobRecord record(job);
  JobRecord::Prepared prepared;
  prepared.evaluation_dataset_id = "dec";
  prepared.class_names = {"a", "b"};
  prepared.num_images = 7;
  prepared.test_evaluation_dataset_id = "test";
  v1::Preparation p;
  p.set_images_done(3);
  EXPECT_EQ(record.SetPrepared(prepared).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(record.SetPreparation(p).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(record.MoveJob(v1::JOB_STATE_PREPARING, "", kNow).ok());
  ASSERT_TRUE(record.SetPreparation(p).ok());
  ASSERT_TRUE(record.SetPrepared(prepared).ok());
  EXPECT_EQ(record.job().preparation().images_done(), 3);
  EXPECT_EQ(record.job().evaluation_dataset_id(), "dec");
  EXPECT_EQ(record.job().num_classes(), 2);
  EXPECT_EQ(record.job().num_images(), 7);
  EXPECT_EQ(record.job().test_evaluation_dataset_id(), "test");
  ASSERT_TRUE(record.MoveJob(v1::JOB_STATE_RUNNING, "", kNow).ok());
  EXPECT_EQ(record.SetPreparation(p).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(JobRecordTest, QueuedOrPreparingJobsMayBeCancelledOrFail) {
  for (v1::JobState from : {v1::JOB_STATE_QUEUED, v1::JOB_STATE_PREPARING}) {
    for (v1::JobState to : {v1::JOB_STATE_CANCELLED, v1::JOB_STATE_FAILED}) {
      v1::Job job;
      job.set_id("job-1");
      job.set_state(from);
      JobRecord record(job);
      EXPECT_TRUE(record.MoveJob(to, "", kNow).ok()) << from << " -> " << to;
      EXPECT_TRUE(record.job().has_finished());
    }
    v1::Job job;
    job.set_state(from);
    JobRecord record(job);
    EXPECT_FALSE(record.MoveJob(v1::JOB_STATE_SUCCEEDED, "", kNow).ok());
  }
}

TEST(JobRecordTest, AFinalTrainingRecordsItsThreads) {
  JobRecord record = RunningJob();
  ASSERT_TRUE(record.QueueFinal(2, 1, 10).ok());
  auto ev = record.StartAttempt(EvalTarget::Final(), "w1", 3);
  ASSERT_TRUE(ev.ok());
  EXPECT_EQ(ev->final_training().threads(), 3);
  EXPECT_EQ(record.job().final_training().threads(), 3);
}

}  // namespace
}  // namespace nanonas::coordinator
