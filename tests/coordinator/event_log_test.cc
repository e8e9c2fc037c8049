// EventLog: persisted events and live progress merged in the order they happened, from a cursor.
#include "server/coordinator/event_log.h"

#include "gtest/gtest.h"

namespace nanonas::coordinator {
namespace {

namespace v1 = nanonas::v1;
const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

v1::JobEvent StateEvent(EventLog& log, v1::JobState s) {
  v1::JobEvent e;
  e.set_job_state(s);
  log.Stamp(&e, kNow);
  return e;
}

TEST(EventLogTest, StampGivesTheNextSequenceAndProgressSitsAfterTheLastPersistedEvent) {
  EventLog log(8);
  v1::JobEvent first = StateEvent(log, v1::JOB_STATE_QUEUED);
  EXPECT_EQ(first.sequence(), 1);
  log.Append(first);
  log.AddProgress(1, MakeProgressEvent(log.last_sequence(), kNow, v1::CandidateProgress()));
  log.Append(StateEvent(log, v1::JOB_STATE_RUNNING));
  EXPECT_EQ(log.last_sequence(), 2);

  WatchCursor cursor;  // from the beginning: the snapshot at the latest event
  v1::Job job;
  auto snap = log.Start(&cursor, job, kNow, 0);
  ASSERT_TRUE(snap.ok());
  EXPECT_EQ(snap->sequence(), 2);

  WatchCursor replay;
  replay.sequence = 0;
  replay.started = true;
  std::vector<v1::JobEvent> out;
  log.Collect(&replay, 1, &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].sequence(), 1);
  EXPECT_TRUE(out[1].has_progress());
  EXPECT_EQ(out[2].job_state(), v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(log.HasNews(replay));
}

TEST(EventLogTest, ACursorBeyondTheLastEventIsOutOfRange) {
  EventLog log(8);
  WatchCursor cursor;
  cursor.sequence = 5;
  EXPECT_EQ(log.Start(&cursor, v1::Job(), kNow, 0).status().code(), absl::StatusCode::kOutOfRange);
}

TEST(EventLogTest, TheProgressRingKeepsOnlyTheNewest) {
  EventLog log(2);
  for (uint64_t n = 1; n <= 5; ++n) {
    log.AddProgress(n,
                    MakeProgressEvent(0, kNow, EpochProgress(1, 0, v1::EpochResult(), 3, false)));
  }
  WatchCursor cursor;
  cursor.started = true;
  std::vector<v1::JobEvent> out;
  log.Collect(&cursor, 5, &out);
  EXPECT_EQ(out.size(), 2u);
}

TEST(EventLogTest, EpochProgressMarksTheFinalTraining) {
  v1::EpochResult epoch;
  epoch.set_epoch(2);
  epoch.set_train_loss(0.5);
  v1::CandidateProgress p = EpochProgress(3, 1, epoch, 100, true);
  EXPECT_EQ(p.k(), 3);
  EXPECT_EQ(p.epoch(), 2);
  EXPECT_EQ(p.epochs(), 100);
  EXPECT_TRUE(p.final_training());
  EXPECT_FALSE(EpochProgress(3, 1, epoch, 3, false).final_training());
}

}  // namespace
}  // namespace nanonas::coordinator
