// Command-line configuration of nanonas-worker, and the host facts its defaults come from.
#ifndef NANONAS_WORKER_SERVICE_WORKER_CONFIG_H_
#define NANONAS_WORKER_SERVICE_WORKER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nanonas {

struct WorkerConfig {
  std::string coordinator;     // HOST:PORT, required
  std::string metrics_listen;  // HOST:PORT, required
  std::string listen = "0.0.0.0:0";
  std::string advertise;            // HOST:PORT; default: see AdvertiseHost
  int64_t memory_budget_bytes = 0;  // default: DefaultMemoryBudget()
  int slots = 0;                    // default: cores
  std::string cache_dir;            // default: $TMPDIR/nanonas-worker-cache-<uid>
  int64_t cache_bytes = 4LL << 30;
  bool help = false;
};

// Parses argv (after the program name) with CLI11: `--flag value` or `--flag=value`, the last
// occurrence winning. INVALID_ARGUMENT naming the flag and what is expected.
absl::StatusOr<WorkerConfig> ParseWorkerFlags(const std::vector<std::string>& args);
std::string WorkerUsage();
// Every long flag ParseWorkerFlags accepts, for checking WorkerUsage() lists them.
std::vector<std::string> WorkerFlags();

// The memory limit of this process's cgroup (v2 memory.max, else v1 memory.limit_in_bytes) when
// set, else physical RAM. `cgroup_root` is for tests.
int64_t DefaultMemoryBudget(const std::string& cgroup_root = "/sys/fs/cgroup");

// Usable cores (sched affinity).
int AvailableCores();

// The CPUs this process's cgroup may use, from its CPU quota: floor(quota / period) (at least 1),
// from cgroup v2 `cpu.max` ("QUOTA PERIOD"; "max ..." = none), else cgroup v1
// `cpu/cpu.cfs_quota_us` + `cpu.cfs_period_us` (also under `cpu,cpuacct/`; -1 = none).
// 0 when no quota is set or the files are unreadable. `cgroup_root` is for tests.
int CgroupCpuLimit(const std::string& cgroup_root = "/sys/fs/cgroup");

// The default --slots: the cgroup CPU quota capped at `cores` when one is set, else `cores`;
// `source` says where the number came from, for the log.
struct DefaultSlotCount {
  int slots = 1;
  std::string source;  // e.g. "cgroup CPU quota 100000/100000 us" or "2 usable cores"
};
DefaultSlotCount DefaultSlots(int cores, const std::string& cgroup_root = "/sys/fs/cgroup");

// The local IP address of the socket this host would use to reach `host_port` (UDP connect, no
// packet sent): what the coordinator can dial back. UNAVAILABLE when it does not resolve.
absl::StatusOr<std::string> LocalAddressToward(const std::string& host_port);

// Splits "host:port" / "[v6]:port". INVALID_ARGUMENT otherwise.
absl::Status SplitHostPort(const std::string& host_port, std::string* host, int* port);

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_WORKER_CONFIG_H_
