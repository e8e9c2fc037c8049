// Job summaries of the web view: progress, phase, result, elapsed time and the ETA from measured
// epoch times.
#include "server/web/job_summary.h"

#include "gtest/gtest.h"

namespace nanonas::web {
namespace {

namespace v1 = nanonas::v1;
const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

void AddEpochs(google::protobuf::RepeatedPtrField<v1::EpochResult>* epochs, int n, double seconds) {
  for (int i = 0; i < n; ++i) {
    auto* e = epochs->Add();
    e->set_epoch(i + 1);
    e->set_seconds(seconds);
  }
}

// A job searching: two candidates done (3 epochs of 2 s), one infeasible, one running.
v1::Job Searching() {
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->set_name("stripes");
  job.mutable_spec()->mutable_evaluation()->set_epochs(3);
  job.mutable_spec()->mutable_constraints()->set_ram_bytes(20480);
  job.mutable_spec()->mutable_constraints()->set_target("NUCLEO-L010RB");
  job.mutable_created()->set_seconds(absl::ToUnixSeconds(kNow) - 120);
  job.mutable_started()->set_seconds(absl::ToUnixSeconds(kNow) - 100);
  for (int c = 0; c < 2; ++c) {
    auto* cand = job.add_candidates();
    cand->set_k(1);
    cand->set_c(c);
    cand->set_state(v1::CANDIDATE_STATE_DONE);
    AddEpochs(cand->mutable_epochs(), 3, 2.0);
  }
  job.add_candidates()->set_state(v1::CANDIDATE_STATE_INFEASIBLE);
  auto* running = job.add_candidates();
  running->set_k(2);
  running->set_c(0);
  running->set_state(v1::CANDIDATE_STATE_RUNNING);
  return job;
}

TEST(JobSummaryTest, EtaOfARunningCandidateUsesTheJobsMeasuredEpochsUntilItsOwn) {
  v1::Job job = Searching();
  ASSERT_TRUE(EtaSeconds(job).has_value());
  EXPECT_DOUBLE_EQ(*EtaSeconds(job), 3 * 2.0) << "3 epochs at the finished candidates' 2 s";
  AddEpochs(job.mutable_candidates(3)->mutable_epochs(), 1, 4.0);
  EXPECT_DOUBLE_EQ(*EtaSeconds(job), 2 * 4.0) << "2 epochs left at its own 4 s";
}

TEST(JobSummaryTest, EtaOfTheFinalTrainingNeedsItsFirstEpoch) {
  v1::Job job = Searching();
  job.mutable_candidates(3)->set_state(v1::CANDIDATE_STATE_DONE);
  v1::FinalTraining* f = job.mutable_final_training();
  f->set_state(v1::CANDIDATE_STATE_RUNNING);
  f->set_epochs_planned(10);
  EXPECT_FALSE(EtaSeconds(job).has_value()) << "other batch sizes: candidates say nothing";
  AddEpochs(f->mutable_epochs(), 2, 5.0);
  EXPECT_DOUBLE_EQ(*EtaSeconds(job), 8 * 5.0);
  nlohmann::json s = JobSummary(job, kNow);
  EXPECT_EQ(s["phase"], "final_training");
  EXPECT_EQ(s["progress"]["running"]["final_training"], true);
  EXPECT_EQ(s["progress"]["running"]["epoch"], 2);
  EXPECT_EQ(s["progress"]["running"]["epochs"], 10);
}

TEST(JobSummaryTest, NoEtaWhileQueuedOrAfterTheEnd) {
  v1::Job job = Searching();
  job.set_state(v1::JOB_STATE_QUEUED);
  EXPECT_FALSE(EtaSeconds(job).has_value());
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_FALSE(EtaSeconds(job).has_value());
  EXPECT_TRUE(JobSummary(job, kNow)["eta_seconds"].is_null());
}

TEST(JobSummaryTest, SummaryCountsTheSearchPathAndTimes) {
  v1::Job job = Searching();
  nlohmann::json s = JobSummary(job, kNow);
  EXPECT_EQ(s["id"], "job-1");
  EXPECT_EQ(s["name"], "stripes");
  EXPECT_EQ(s["state"], "JOB_STATE_RUNNING");
  EXPECT_EQ(s["phase"], "search");
  EXPECT_EQ(s["target"]["name"], "NUCLEO-L010RB");
  EXPECT_EQ(s["target"]["ram_bytes"], 20480);
  EXPECT_EQ(s["progress"]["candidates"], 4);
  EXPECT_EQ(s["progress"]["settled"], 3);
  EXPECT_EQ(s["progress"]["evaluated"], 2);
  EXPECT_EQ(s["progress"]["running"]["k"], 2);
  EXPECT_EQ(s["progress"]["running"]["epochs"], 3);
  EXPECT_DOUBLE_EQ(s["elapsed_seconds"].get<double>(), 100.0) << "from the start";
  EXPECT_EQ(s["started"], "2023-11-14T22:11:40Z");
  EXPECT_EQ(s["finished"], "");
  EXPECT_TRUE(s["result"].is_null());
  EXPECT_DOUBLE_EQ(s["eta_seconds"].get<double>(), 6.0);

  job.set_state(v1::JOB_STATE_SUCCEEDED);
  job.mutable_finished()->set_seconds(absl::ToUnixSeconds(kNow) - 40);
  job.mutable_result()->set_found(true);
  job.mutable_result()->set_k(1);
  job.mutable_result()->set_c(1);
  job.mutable_final_training()->set_state(v1::CANDIDATE_STATE_DONE);
  job.mutable_final_training()->set_has_test_accuracy(true);
  job.mutable_final_training()->set_quantized_test_accuracy(0.9);
  s = JobSummary(job, kNow);
  EXPECT_EQ(s["phase"], "ended");
  EXPECT_DOUBLE_EQ(s["elapsed_seconds"].get<double>(), 60.0) << "start to end";
  EXPECT_EQ(s["result"]["found"], true);
  EXPECT_EQ(s["result"]["c"], 1);
  EXPECT_DOUBLE_EQ(s["result"]["quantized_test_accuracy"].get<double>(), 0.9);
  EXPECT_TRUE(s["result"]["quantized_validation_accuracy"].is_number());
}

TEST(JobSummaryTest, AQueuedJobCountsFromItsCreation) {
  v1::Job job;
  job.set_state(v1::JOB_STATE_QUEUED);
  job.mutable_created()->set_seconds(absl::ToUnixSeconds(kNow) - 7);
  EXPECT_DOUBLE_EQ(ElapsedSeconds(job, kNow), 7.0);
  EXPECT_EQ(JobSummary(job, kNow)["phase"], "queued");
  EXPECT_EQ(FormatTimestamp(google::protobuf::Timestamp()), "");
}

TEST(JobSummaryTest, APreparingJobShowsItsPreparationProgress) {
  v1::Job job;
  job.set_state(v1::JOB_STATE_PREPARING);
  EXPECT_TRUE(JobSummary(job, kNow)["preparation"].is_null()) << "nothing reported yet";
  v1::Preparation* p = job.mutable_preparation();
  p->set_dataset_id("sha256:abc");
  p->set_images_done(1200);
  p->set_images_total(5000);
  p->set_test_set(true);
  const nlohmann::json s = JobSummary(job, kNow);
  EXPECT_EQ(s["phase"], "preparing");
  EXPECT_EQ(s["state"], "JOB_STATE_PREPARING");
  EXPECT_EQ(s["preparation"]["dataset_id"], "sha256:abc");
  EXPECT_EQ(s["preparation"]["images_done"], 1200);
  EXPECT_EQ(s["preparation"]["images_total"], 5000);
  EXPECT_EQ(s["preparation"]["test_set"], true);
  EXPECT_TRUE(s["eta_seconds"].is_null());
}

}  // namespace
}  // namespace nanonas::web
