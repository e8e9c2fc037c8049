// WorkerPool: registration, heartbeats, expiry and the slots the scheduler sees.
#include "server/coordinator/worker_pool.h"

#include "gtest/gtest.h"

namespace nanonas::coordinator {
namespace {

namespace v1 = nanonas::v1;
const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

v1::WorkerDescription Worker(const std::string& id, int slots) {
  v1::WorkerDescription w;
  w.set_id(id);
  w.set_address(id + ":1");
  w.set_slots(slots);
  return w;
}

TEST(WorkerPoolTest, RegistersTouchesAndExpiresSilentWorkers) {
  WorkerPool pool;
  EXPECT_TRUE(pool.Register(Worker("a", 1), kNow));
  EXPECT_FALSE(pool.Register(Worker("a", 2), kNow)) << "registering again is not new";
  EXPECT_TRUE(pool.Register(Worker("b", 1), kNow));
  EXPECT_FALSE(pool.Touch("nobody", kNow));
  EXPECT_TRUE(pool.Touch("a", kNow + absl::Seconds(2)));
  auto silent = pool.Silent(kNow + absl::Seconds(4), absl::Seconds(3));
  ASSERT_EQ(silent.size(), 1u);
  EXPECT_EQ(silent[0].first, "b");
  EXPECT_EQ(silent[0].second, absl::Seconds(4));
  EXPECT_TRUE(pool.Remove("b"));
  EXPECT_FALSE(pool.Remove("b"));
  EXPECT_EQ(pool.size(), 1);
  EXPECT_EQ(pool.Find("a")->slots(), 2);
}

TEST(WorkerPoolTest, SlotsCountRunningEvaluationsAndBusyWorkersSitOut) {
  WorkerPool pool;
  pool.Register(Worker("a", 2), kNow);
  pool.Register(Worker("b", 0), kNow);  // 0 slots means 1
  pool.Started("a", 7);
  pool.BusyUntil("b", kNow + absl::Milliseconds(300));
  auto slots = pool.Slots(kNow);
  ASSERT_EQ(slots.size(), 2u);
  EXPECT_EQ(slots[0].worker_id, "a");
  EXPECT_EQ(slots[0].free_slots, 1);
  EXPECT_EQ(slots[0].last_dispatch, 7u);
  EXPECT_EQ(slots[1].free_slots, 1);
  EXPECT_FALSE(slots[1].available);
  EXPECT_TRUE(pool.Slots(kNow + absl::Seconds(1))[1].available);
  EXPECT_EQ(pool.Busy(), 1);
  pool.Ended("a");
  pool.Ended("a");  // never below zero
  EXPECT_EQ(pool.Slots(kNow)[0].free_slots, 2);
  EXPECT_EQ(pool.Busy(), 0);
}

TEST(WorkerPoolTest, AnEvaluationWithSeveralThreadsTakesThatManySlots) {
  WorkerPool pool;
  pool.Register(Worker("a", 4), kNow);
  pool.Started("a", 1, 3);
  pool.Started("a", 2);
  EXPECT_EQ(pool.Slots(kNow)[0].free_slots, 0);
  EXPECT_EQ(pool.List(kNow)[0].running, 2);
  EXPECT_EQ(pool.List(kNow)[0].used_slots, 4);
  pool.Ended("a", 3);
  EXPECT_EQ(pool.Slots(kNow)[0].free_slots, 3);
}

TEST(WorkerPoolTest, ListShowsEachWorkersHeartbeatRunningAndBusyState) {
  WorkerPool pool;
  pool.Register(Worker("b", 2), kNow);
  pool.Register(Worker("a", 1), kNow);
  pool.Touch("a", kNow + absl::Seconds(5));
  pool.Started("b", 1);
  pool.Started("b", 2);
  pool.BusyUntil("a", kNow + absl::Seconds(10));
  auto list = pool.List(kNow + absl::Seconds(6));
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].desc.id(), "a") << "in id order";
  EXPECT_EQ(list[0].last_seen, kNow + absl::Seconds(5));
  EXPECT_EQ(list[0].running, 0);
  EXPECT_TRUE(list[0].said_busy);
  EXPECT_EQ(list[1].desc.slots(), 2);
  EXPECT_EQ(list[1].running, 2);
  EXPECT_FALSE(list[1].said_busy);
  EXPECT_FALSE(pool.List(kNow + absl::Seconds(11))[0].said_busy) << "busy only until then";
}

}  // namespace
}  // namespace nanonas::coordinator
