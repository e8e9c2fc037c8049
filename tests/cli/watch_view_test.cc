#include "client/watch_view.h"

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

namespace v1 = nanonas::v1;
using testing::HasSubstr;
using testing::Not;

// A running job with `n` candidates of every kind (long notes and figures included).
v1::Job JobWithCandidates(int n) {
  v1::Job job;
  job.set_id("0f4c8a52-7d0e-4c55-9a3e-1b2c3d4e5f60");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->set_name("a-rather-long-job-name-for-the-header");
  job.mutable_spec()->mutable_input()->set_height(50);
  job.mutable_spec()->mutable_input()->set_width(50);
  job.mutable_spec()->mutable_input()->set_channels(3);
  auto* lim = job.mutable_spec()->mutable_constraints();
  lim->set_ram_bytes(40960);
  lim->set_flash_bytes(131072);
  lim->set_macc(2730000);
  lim->set_host_memory_bytes(2LL << 30);
  lim->set_target("NUCLEO-L412KB");
  for (int i = 0; i < n; ++i) {
    v1::Candidate* c = job.add_candidates();
    c->set_sequence(i);
    c->set_k(1 + i / 4);
    c->set_c(i % 4);
    c->set_macc(123456789);
    c->set_flash_bytes(999 * 1024 * 1024);
    c->set_ram_bytes(1023 * 1024);
    c->set_worker("worker-host-with-a-long-name-12345-abcd");
    c->set_duration_seconds(12.5 + i);
    c->set_peak_memory_bytes(300 << 20);
    if (i % 5 == 3) {
      c->set_state(v1::CANDIDATE_STATE_HOST_INFEASIBLE);
      c->set_error("training needs 3.2 GiB, the worker's budget is 2 GiB");
    } else if (i % 5 == 4) {
      c->set_state(v1::CANDIDATE_STATE_INFEASIBLE);
      auto* v = c->add_violations();
      v->set_resource("ram_bytes");
      v->set_value(50000);
      v->set_limit(40960);
      v->set_excess(9040);
    } else {
      c->set_state(v1::CANDIDATE_STATE_DONE);
      c->set_best_validation_accuracy(0.8125);
    }
  }
  job.mutable_candidates(n - 1)->set_state(v1::CANDIDATE_STATE_RUNNING);
  job.mutable_candidates(n - 1)->set_duration_seconds(0);
  return job;
}

TEST(WatchFrameTest, EveryLineOfATwentyCandidateFrameFitsEightyColumns) {
  v1::Job job = JobWithCandidates(20);
  v1::CandidateProgress p;
  p.set_k(5);
  p.set_c(3);
  p.set_epoch(2);
  p.set_epochs(3);
  p.set_batch(7);
  p.set_batches_per_epoch(10);
  WatchTiming t = EstimateTiming(job, &p, 754, 0);
  std::vector<std::string> frame = RenderWatchFrame(job, &p, t, 80, 100);
  ASSERT_GE(frame.size(), 24u);
  for (const std::string& line : frame) EXPECT_LE(DisplayWidth(line), 80) << line;
  EXPECT_THAT(frame[0], HasSubstr("RUNNING  elapsed 12m34s  ETA ≥"));
  std::string all;
  for (const std::string& line : frame) all += line + "\n";
  EXPECT_THAT(all, HasSubstr("HOST_INF"));
  EXPECT_THAT(all, HasSubstr("INFEASIBLE"));
  EXPECT_THAT(all, HasSubstr("training k=5 c=3  epoch 2/3"));
  EXPECT_THAT(all, Not(HasSubstr("earlier")));  // 100 lines: every row fits
}

TEST(WatchFrameTest, KeepsTheHeaderAndTheLatestRowsWhenTheTerminalIsShort) {
  v1::Job job = JobWithCandidates(20);
  std::vector<std::string> frame = RenderWatchFrame(job, nullptr, WatchTiming{}, 80, 12);
  EXPECT_LE(frame.size(), 11u);  // height - 1: writing the frame never scrolls
  EXPECT_THAT(frame[0], HasSubstr("job 0f4c8a52"));
  EXPECT_THAT(frame[2], HasSubstr("state"));
  EXPECT_THAT(frame[3], HasSubstr("… 13 earlier"));
  EXPECT_THAT(frame[4], testing::StartsWith(" 13 "));
  EXPECT_THAT(frame[10], testing::StartsWith(" 19 "));  // the latest row is shown
  for (const std::string& line : RenderWatchFrame(job, nullptr, WatchTiming{}, 40, 12)) {
    EXPECT_LE(DisplayWidth(line), 40) << line;
  }
}

TEST(WatchFrameTest, WrapsTheResultLinesInsteadOfCuttingThem) {
  v1::Job job = JobWithCandidates(3);
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  job.mutable_result()->set_stop_reason(
      "row k=2 peaked at c=0 (0.2667), not better than row k=1's best c=2 (0.5833)");
  std::vector<std::string> frame = RenderWatchFrame(job, nullptr, WatchTiming{}, 60, 40);
  std::string all;
  for (const std::string& line : frame) {
    EXPECT_LE(DisplayWidth(line), 60) << line;
    all += line + "\n";
  }
  EXPECT_THAT(all, HasSubstr("stopped: row k=2 peaked at c=0 (0.2667), not better than row\n"
                             "  k=1's best c=2 (0.5833)\n"));
  EXPECT_THAT(RenderWatchFrame(job, nullptr, WatchTiming{}, 80, 40)[0],
              HasSubstr("SUCCEEDED  elapsed 0s  done"));
}

TEST(WatchFrameTest, RedrawsOnlyTheLinesThatChangedWithoutClearingTheScreen) {
  std::vector<std::string> a = {"job x RUNNING", "row 1", "row 2"};
  std::vector<std::string> b = {"job x RUNNING", "row 1 DONE", "row 2"};
  EXPECT_EQ(FrameUpdate(a, a), "");
  EXPECT_EQ(FrameUpdate(a, b), "\033[2;1Hrow 1 DONE\033[K\033[4;1H");
  std::string shrink = FrameUpdate(a, {"job x SUCCEEDED"});
  EXPECT_THAT(shrink, HasSubstr("\033[1;1Hjob x SUCCEEDED\033[K"));
  EXPECT_THAT(shrink, HasSubstr("\033[2;1H\033[J"));  // the rest of the old frame goes
  EXPECT_THAT(FrameUpdate({}, b), Not(HasSubstr("\033[2J")));
}

TEST(WatchTimingTest, EtaIsUnknownUntilACandidateIsMeasured) {
  v1::Job job;
  job.set_state(v1::JOB_STATE_RUNNING);
  job.add_candidates()->set_state(v1::CANDIDATE_STATE_RUNNING);
  WatchTiming t = EstimateTiming(job, nullptr, 5, 0);
  EXPECT_FALSE(t.eta_seconds.has_value());
  EXPECT_EQ(EtaText(t, false), "ETA —");
  EXPECT_EQ(EtaText(t, true), "done");
}

TEST(WatchTimingTest, EtaFromTheMeanCandidateDurationAndTheFinalTrainingEpochs) {
  v1::Job job;
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->mutable_evaluation()->set_epochs(3);
  job.mutable_spec()->mutable_final_training()->set_epochs(10);
  for (double d : {20.0, 40.0}) {  // mean 30 s per candidate, 10 s per epoch
    v1::Candidate* c = job.add_candidates();
    c->set_state(v1::CANDIDATE_STATE_DONE);
    c->set_duration_seconds(d);
  }
  job.add_candidates()->set_state(v1::CANDIDATE_STATE_RUNNING);
  job.add_candidates()->set_state(v1::CANDIDATE_STATE_PENDING);
  // 2 outstanding x 30 s + 10 final epochs x 10 s = 160 s, at least (the search may go on).
  WatchTiming t = EstimateTiming(job, nullptr, 60, 0);
  ASSERT_TRUE(t.eta_seconds.has_value());
  EXPECT_DOUBLE_EQ(*t.eta_seconds, 160);
  EXPECT_EQ(EtaText(t, false), "ETA ≥2m40s");
  // Half of the running candidate done: 15 s less.
  v1::CandidateProgress p;
  p.set_epoch(2);
  p.set_epochs(3);
  p.set_batch(5);
  p.set_batches_per_epoch(10);
  EXPECT_DOUBLE_EQ(*EstimateTiming(job, &p, 60, 0).eta_seconds, 145);
  // The final training running, epoch 5 of 10 begun, measured at 12 s per epoch: 5.5 x 12.
  job.mutable_final_training()->set_state(v1::CANDIDATE_STATE_RUNNING);
  job.mutable_final_training()->set_epochs_planned(10);
  p.set_final_training(true);
  p.set_epoch(5);
  p.set_epochs(10);
  p.set_batch(5);
  WatchTiming f = EstimateTiming(job, &p, 600, 12);
  EXPECT_DOUBLE_EQ(*f.eta_seconds, 66);
  EXPECT_FALSE(f.eta_at_least);
  EXPECT_EQ(EtaText(f, false), "ETA 1m06s");
  EXPECT_EQ(FormatDuration(7530), "2h05m");
  EXPECT_EQ(FormatDuration(42), "42s");
}

TEST(WatchFinalTrainingTest, RunningLineShowsTheEpochAndNoZeroAccuracy) {
  v1::FinalTraining f;
  f.set_state(v1::CANDIDATE_STATE_RUNNING);
  f.set_epochs_planned(20);
  EXPECT_EQ(FinalTrainingLine(f, nullptr), "final training: RUNNING");
  v1::CandidateProgress p;
  p.set_final_training(true);
  p.set_epoch(3);
  p.set_epochs(20);
  EXPECT_EQ(FinalTrainingLine(f, &p), "final training: RUNNING, epoch 3/20");
  f.add_epochs()->set_validation_accuracy(0.9);
  f.add_epochs()->set_validation_accuracy(0.9125);
  EXPECT_EQ(FinalTrainingLine(f, &p), "final training: RUNNING, epoch 3/20, best so far 0.9125");
  EXPECT_THAT(FinalTrainingLine(f, nullptr), HasSubstr("epoch 2/20"));
  f.Clear();
  EXPECT_EQ(FinalTrainingLine(f, nullptr), "");
  f.set_state(v1::CANDIDATE_STATE_PENDING);
  EXPECT_THAT(FinalTrainingLine(f, nullptr), Not(HasSubstr("0.0000")));
}

TEST(WatchEventLogTest, PrintsOneLinePerEventAndNothingWhenNothingChanged) {
  EventLog log;
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_RUNNING);
  EXPECT_EQ(log.Update(job, nullptr, WatchTiming{}), "job job-1 RUNNING after 0s\n");
  EXPECT_EQ(log.Update(job, nullptr, WatchTiming{}), "");
  v1::Candidate* c = job.add_candidates();
  c->set_k(1);
  c->set_state(v1::CANDIDATE_STATE_RUNNING);
  EXPECT_EQ(log.Update(job, nullptr, WatchTiming{}), "candidate #0 k=1 c=0 RUNNING\n");
  c->set_state(v1::CANDIDATE_STATE_DONE);
  c->set_best_validation_accuracy(0.75);
  c->set_duration_seconds(30);
  WatchTiming t;
  t.elapsed_seconds = 31;
  t.eta_seconds = 90;
  t.eta_at_least = true;
  EXPECT_EQ(log.Update(job, nullptr, t),
            "candidate #0 k=1 c=0 DONE acc 0.7500 in 30.0s; elapsed 31s, ETA ≥1m30s\n");
  job.mutable_final_training()->set_state(v1::CANDIDATE_STATE_RUNNING);
  job.mutable_final_training()->set_k(1);
  EXPECT_EQ(log.Update(job, nullptr, t), "final training k=1 c=0 RUNNING\n");
  v1::CandidateProgress p;
  p.set_final_training(true);
  p.set_epoch(1);
  p.set_epochs(20);
  EXPECT_THAT(log.Update(job, &p, t), testing::StartsWith("final training epoch 1/20;"));
  EXPECT_EQ(log.Update(job, &p, t), "");  // progress within the same epoch: no line
}

TEST(WatchFrameTest, APreparingJobShowsItsImagesProgress) {
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_PREPARING);
  job.mutable_preparation()->set_images_done(45000);
  job.mutable_preparation()->set_images_total(115000);
  job.mutable_preparation()->set_seconds(11);
  std::string all;
  for (const std::string& line : RenderWatchFrame(job, nullptr, WatchTiming{}, 80, 24)) {
    EXPECT_LE(DisplayWidth(line), 80) << line;
    all += line + "\n";
  }
  EXPECT_THAT(all, HasSubstr("job-1  PREPARING"));
  EXPECT_THAT(all, HasSubstr("preparing the dataset: 45,000/115,000 images (39%)"));
  job.set_state(v1::JOB_STATE_RUNNING);  // once it runs, the line goes
  all.clear();
  for (const std::string& line : RenderWatchFrame(job, nullptr, WatchTiming{}, 80, 24)) {
    all += line + "\n";
  }
  EXPECT_THAT(all, Not(HasSubstr("images")));
}

TEST(WatchEventLogTest, PrintsAPreparationLinePerTenthNotPerEvent) {
  EventLog log;
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_PREPARING);
  v1::Preparation* p = job.mutable_preparation();
  p->set_images_total(1000);
  std::string printed;
  for (int done = 0; done <= 1000; done += 25) {  // 41 progress events
    p->set_images_done(done);
    p->set_seconds(done / 100.0);
    printed += log.Update(job, nullptr, WatchTiming{});
  }
  std::vector<std::string> lines = absl::StrSplit(printed, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 12u) << printed;  // the state, then 0%, 10%, ..., 100%
  EXPECT_EQ(lines[0], "job job-1 PREPARING after 0s");
  EXPECT_EQ(lines[1], "preparing the dataset: 0/1,000 images (0%)");
  EXPECT_THAT(lines[2], testing::StartsWith("preparing the dataset: 100/1,000 images (10%), 100 "));
  EXPECT_THAT(lines[11], testing::StartsWith("preparing the dataset: 1,000/1,000 images (100%)"));
  // The test set starts again from its first figure.
  p->set_test_set(true);
  p->set_images_done(0);
  EXPECT_EQ(log.Update(job, nullptr, WatchTiming{}),
            "preparing the test set: 0/1,000 images (0%)\n");
}

}  // namespace
}  // namespace nanonas
