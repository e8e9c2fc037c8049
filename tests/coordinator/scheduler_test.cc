// The scheduling policy on its own: plain snapshots in, assignments out (no threads, no clock).
#include "server/coordinator/scheduler.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas::coordinator {
namespace {

WorkItem Work(WorkItem::Kind kind, const std::string& job, int64_t rank, int k = 1, int c = 0) {
  WorkItem w;
  w.kind = kind;
  w.job_id = job;
  w.job_rank = rank;
  w.k = k;
  w.c = c;
  return w;
}

WorkerSlot Slot(const std::string& id, int free, uint64_t last_dispatch = 0,
                bool available = true) {
  WorkerSlot s;
  s.worker_id = id;
  s.free_slots = free;
  s.last_dispatch = last_dispatch;
  s.available = available;
  return s;
}

// (job, worker) of each assignment.
std::vector<std::pair<std::string, std::string>> Pairs(const std::vector<Assignment>& as) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& a : as) out.emplace_back(a.work.job_id, a.worker_id);
  return out;
}

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(OldestJobFirstPolicyTest, RequiredWorkGoesBeforeSpeculativeWork) {
  SchedulingSnapshot s;
  s.speculative = {Work(WorkItem::Kind::kSpeculative, "old", 1, 1, 1)};
  s.required = {Work(WorkItem::Kind::kCandidate, "new", 2)};
  s.workers = {Slot("w1", 1)};
  const auto out = OldestJobFirstPolicy().Schedule(s);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].work.job_id, "new");
  EXPECT_EQ(out[0].work.kind, WorkItem::Kind::kCandidate);
  EXPECT_TRUE(out[0].preempt.empty());
}

TEST(OldestJobFirstPolicyTest, TheOldestJobIsServedFirst) {
  SchedulingSnapshot s;
  s.required = {Work(WorkItem::Kind::kCandidate, "young", 3),
                Work(WorkItem::Kind::kFinal, "oldest", 1),
                Work(WorkItem::Kind::kCandidate, "middle", 2)};
  s.workers = {Slot("w1", 2)};
  EXPECT_THAT(Pairs(OldestJobFirstPolicy().Schedule(s)),
              ElementsAre(Pair("oldest", "w1"), Pair("middle", "w1")));
}

TEST(OldestJobFirstPolicyTest, MostFreeSlotsFirstThenTheWorkerSentWorkLongestAgo) {
  SchedulingSnapshot s;
  for (int j = 1; j <= 4; ++j) {
    s.required.push_back(Work(WorkItem::Kind::kCandidate, "j" + std::to_string(j), j));
  }
  // a: 1 free, sent work at 7; b: 2 free, sent at 9; c: 1 free, never sent work; d: busy.
  s.workers = {Slot("a", 1, 7), Slot("b", 2, 9), Slot("c", 1, 0), Slot("d", 3, 0, false)};
  EXPECT_THAT(Pairs(OldestJobFirstPolicy().Schedule(s)),
              ElementsAre(Pair("j1", "b"), Pair("j2", "c"), Pair("j3", "a"), Pair("j4", "b")));
}

TEST(OldestJobFirstPolicyTest, RequiredWorkPreemptsASpeculationWhenNoSlotIsFree) {
  SchedulingSnapshot s;
  s.required = {Work(WorkItem::Kind::kCandidate, "j1", 1)};
  s.speculative = {Work(WorkItem::Kind::kSpeculative, "j1", 1, 1, 1)};
  s.workers = {Slot("w1", 0, 5)};
  s.running_speculation = {{"gone-eval", "unknown-worker"}, {"spec-eval", "w1"}};
  const auto out = OldestJobFirstPolicy().Schedule(s);
  ASSERT_EQ(out.size(), 1u) << "no speculation while the slot went to required work";
  EXPECT_EQ(out[0].worker_id, "w1");
  EXPECT_EQ(out[0].preempt, "spec-eval");
}

TEST(OldestJobFirstPolicyTest, NothingToFreeStopsScheduling) {
  SchedulingSnapshot s;
  s.required = {Work(WorkItem::Kind::kCandidate, "j1", 1)};
  s.speculative = {Work(WorkItem::Kind::kSpeculative, "j2", 2)};
  s.workers = {Slot("w1", 0)};
  EXPECT_TRUE(OldestJobFirstPolicy().Schedule(s).empty());
}

TEST(OldestJobFirstPolicyTest, SpeculationFillsIdleSlotsOldestJobFirst) {
  SchedulingSnapshot s;
  s.speculative = {Work(WorkItem::Kind::kSpeculative, "j2", 2, 1, 1),
                   Work(WorkItem::Kind::kSpeculative, "j1", 1, 2, 0),
                   Work(WorkItem::Kind::kSpeculative, "j1", 1, 1, 2)};
  s.workers = {Slot("w1", 1), Slot("w2", 1, 3)};
  EXPECT_THAT(Pairs(OldestJobFirstPolicy().Schedule(s)),
              ElementsAre(Pair("j1", "w1"), Pair("j1", "w2")));
}

TEST(OldestJobFirstPolicyTest, AFinalTrainingTakesTheSlotsLeftAfterRequiredWork) {
  SchedulingSnapshot s;
  s.required = {Work(WorkItem::Kind::kFinal, "old", 1, 2, 1),
                Work(WorkItem::Kind::kCandidate, "new", 2, 1, 0)};
  s.speculative = {Work(WorkItem::Kind::kSpeculative, "new", 2, 1, 1)};
  s.workers = {Slot("w1", 4)};
  const auto out = OldestJobFirstPolicy().Schedule(s);
  ASSERT_EQ(out.size(), 2u) << "no slot is left for speculation";
  EXPECT_EQ(out[0].work.kind, WorkItem::Kind::kFinal);
  EXPECT_EQ(out[0].threads, 3) << "4 slots: 1 for the candidate, 3 for the final training";
  EXPECT_EQ(out[1].work.kind, WorkItem::Kind::kCandidate);
  EXPECT_EQ(out[1].threads, 1);
}

TEST(OldestJobFirstPolicyTest, AFinalTrainingTakesOnlyItsOwnWorkersSlots) {
  SchedulingSnapshot s;
  s.required = {Work(WorkItem::Kind::kFinal, "a", 1, 2, 1)};
  s.speculative = {Work(WorkItem::Kind::kSpeculative, "b", 2, 1, 1)};
  s.workers = {Slot("w1", 2), Slot("w2", 1)};
  const auto out = OldestJobFirstPolicy().Schedule(s);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].worker_id, "w1");
  EXPECT_EQ(out[0].threads, 2);
  EXPECT_EQ(out[1].worker_id, "w2") << "speculation fills the other worker";
  EXPECT_EQ(out[1].threads, 1);
}

}  // namespace
}  // namespace nanonas::coordinator
