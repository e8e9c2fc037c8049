#include "worker/service/worker_config.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

TEST(WorkerFlagsTest, ParsesEveryFlagWithHumanUnits) {
  auto c = ParseWorkerFlags({"--coordinator", "localhost:50051", "--metrics-listen=0.0.0.0:9101",
                             "--memory-budget", "512MiB", "--slots", "2", "--cache-dir", "/tmp/c",
                             "--cache-bytes", "1GiB", "--listen", "127.0.0.1:0", "--advertise",
                             "10.0.0.5:7000"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->coordinator, "localhost:50051");
  EXPECT_EQ(c->metrics_listen, "0.0.0.0:9101");
  EXPECT_EQ(c->memory_budget_bytes, 512LL << 20);
  EXPECT_EQ(c->slots, 2);
  EXPECT_EQ(c->cache_bytes, 1LL << 30);
  EXPECT_EQ(c->listen, "127.0.0.1:0");
  EXPECT_EQ(c->advertise, "10.0.0.5:7000");
}

TEST(WorkerFlagsTest, ErrorsSayWhatToFix) {
  auto missing = ParseWorkerFlags({"--metrics-listen", "0.0.0.0:9101"});
  EXPECT_THAT(std::string(missing.status().message()), testing::HasSubstr("--coordinator"));
  auto bad_port = ParseWorkerFlags({"--coordinator", "host", "--metrics-listen", ":1"});
  EXPECT_EQ(bad_port.status().code(), absl::StatusCode::kInvalidArgument);
  auto bad_slots =
      ParseWorkerFlags({"--coordinator", "h:1", "--metrics-listen", "h:2", "--slots", "0"});
  EXPECT_THAT(std::string(bad_slots.status().message()), testing::HasSubstr("--slots"));
  auto unknown = ParseWorkerFlags({"--frobnicate"});
  EXPECT_THAT(std::string(unknown.status().message()), testing::HasSubstr("unknown flag"));
  auto budget = ParseWorkerFlags(
      {"--coordinator", "h:1", "--metrics-listen", "h:2", "--memory-budget", "lots"});
  EXPECT_THAT(std::string(budget.status().message()), testing::HasSubstr("--memory-budget"));
  EXPECT_TRUE(ParseWorkerFlags({"--help"})->help);
}

TEST(WorkerFlagsTest, HelpListsEveryFlagAndTheLastValueWins) {
  const std::vector<std::string> flags = WorkerFlags();
  EXPECT_EQ(flags.size(), 9u);
  for (const std::string& flag : flags) {
    EXPECT_THAT(WorkerUsage(), testing::HasSubstr(flag)) << flag;
  }
  auto c = ParseWorkerFlags(
      {"--coordinator=h:1", "--metrics-listen", "h:2", "--slots=3", "--slots", "4"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->slots, 4);
  auto missing = ParseWorkerFlags({"--coordinator", "h:1", "--metrics-listen"});
  EXPECT_THAT(std::string(missing.status().message()), testing::HasSubstr("needs a value"));
}

TEST(WorkerConfigTest, MemoryBudgetComesFromTheCgroupLimit) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("nanonas-cgroup-" + std::to_string(getpid()));
  fs::create_directories(root / "memory");
  std::ofstream(root / "memory.max") << "268435456\n";
  EXPECT_EQ(DefaultMemoryBudget(root.string()), 268435456);
  std::ofstream(root / "memory.max") << "max\n";
  std::ofstream(root / "memory" / "memory.limit_in_bytes") << "134217728\n";
  EXPECT_EQ(DefaultMemoryBudget(root.string()), 134217728);  // cgroup v1
  std::ofstream(root / "memory" / "memory.limit_in_bytes") << "9223372036854771712\n";
  int64_t phys = DefaultMemoryBudget(root.string());  // unlimited: physical RAM
  EXPECT_GT(phys, 134217728);
  fs::remove_all(root);
}

TEST(WorkerConfigTest, SlotsComeFromTheCgroupCpuQuotaCappedAtTheCores) {
  namespace fs = std::filesystem;
  fs::path root = fs::temp_directory_path() / ("nanonas-cgroup-cpu-" + std::to_string(getpid()));
  fs::create_directories(root);
  // No cgroup files: the cores.
  EXPECT_EQ(CgroupCpuLimit(root.string()), 0);
  EXPECT_EQ(DefaultSlots(8, root.string()).slots, 8);
  EXPECT_THAT(DefaultSlots(8, root.string()).source, testing::HasSubstr("8 usable cores"));
  // cgroup v2: a 1-CPU quota on a 2-core host is 1 slot, and the log says why.
  std::ofstream(root / "cpu.max") << "100000 100000\n";
  EXPECT_EQ(CgroupCpuLimit(root.string()), 1);
  DefaultSlotCount one = DefaultSlots(2, root.string());
  EXPECT_EQ(one.slots, 1);
  EXPECT_THAT(one.source, testing::HasSubstr("cgroup CPU quota (100000 us per 100000 us = 1 CPU)"));
  std::ofstream(root / "cpu.max") << "250000 100000\n";  // 2.5 CPUs: floor
  EXPECT_EQ(DefaultSlots(8, root.string()).slots, 2);
  std::ofstream(root / "cpu.max") << "50000 100000\n";  // half a CPU: still one slot
  EXPECT_EQ(DefaultSlots(8, root.string()).slots, 1);
  std::ofstream(root / "cpu.max") << "800000 100000\n";  // more than the cores: capped
  EXPECT_EQ(DefaultSlots(4, root.string()).slots, 4);
  EXPECT_THAT(DefaultSlots(4, root.string()).source, testing::HasSubstr("capped at 4 cores"));
  std::ofstream(root / "cpu.max") << "max 100000\n";  // no quota
  EXPECT_EQ(CgroupCpuLimit(root.string()), 0);
  EXPECT_EQ(DefaultSlots(3, root.string()).slots, 3);
  // cgroup v1: cpu/cpu.cfs_quota_us and cpu.cfs_period_us; -1 is no quota.
  fs::remove(root / "cpu.max");
  fs::create_directories(root / "cpu");
  std::ofstream(root / "cpu" / "cpu.cfs_quota_us") << "300000\n";
  std::ofstream(root / "cpu" / "cpu.cfs_period_us") << "100000\n";
  EXPECT_EQ(CgroupCpuLimit(root.string()), 3);
  EXPECT_EQ(DefaultSlots(16, root.string()).slots, 3);
  std::ofstream(root / "cpu" / "cpu.cfs_quota_us") << "-1\n";
  EXPECT_EQ(CgroupCpuLimit(root.string()), 0);
  EXPECT_EQ(DefaultSlots(16, root.string()).slots, 16);
  fs::remove_all(root);
}

TEST(WorkerConfigTest, LocalAddressTowardLoopbackIsLoopback) {
  auto a = LocalAddressToward("127.0.0.1:50051");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, "127.0.0.1");
  EXPECT_FALSE(LocalAddressToward("no-such-host.invalid:1").ok());
}

TEST(WorkerConfigTest, SplitsHostPort) {
  std::string host;
  int port;
  ASSERT_TRUE(SplitHostPort("[::1]:80", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 80);
  EXPECT_FALSE(SplitHostPort("nohost", &host, &port).ok());
  EXPECT_FALSE(SplitHostPort("h:99999", &host, &port).ok());
}

}  // namespace
}  // namespace nanonas
