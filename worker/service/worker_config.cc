#include "worker/service/worker_config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/status_macros.h"
#include "common/base/units.h"
#include "common/cli/parse.h"

namespace nanonas {

std::string WorkerUsage() {
  return R"(nanonas-worker: runs NanoNAS candidate evaluations for a coordinator.

Usage: nanonas-worker --coordinator HOST:PORT --metrics-listen HOST:PORT [flags]

  --coordinator HOST:PORT   the coordinator to join (required; retried until it is up)
  --metrics-listen HOST:PORT  Prometheus /metrics endpoint (required)
  --listen HOST:PORT        Worker service address (default 0.0.0.0:0 = any free port)
  --advertise HOST:PORT     address the coordinator dials (default: the local address used to
                            reach the coordinator, with the listening port)
  --memory-budget BYTES     memory limit of one evaluation, human units OK (512MiB, 2GB);
                            default: the cgroup memory limit, else physical RAM
  --slots N                 evaluations at once, one thread each (default: the cores)
  --cache-dir DIR           dataset cache folder (default: $TMPDIR/nanonas-worker-cache-<uid>)
  --cache-bytes BYTES       dataset cache bound, LRU eviction (default 4GiB)
  --help, -h                this text

Each evaluation runs in a child process; SIGTERM/SIGINT leave the coordinator and stop cleanly.
Log level: NANONAS_LOG_LEVEL=debug|info|warning|error.
)";
}

absl::Status SplitHostPort(const std::string& host_port, std::string* host, int* port) {
  std::string h;
  std::string p;
  if (!host_port.empty() && host_port[0] == '[') {
    size_t close = host_port.find(']');
    if (close == std::string::npos || close + 1 >= host_port.size() ||
        host_port[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("'", host_port, "' is not [IPv6]:PORT"));
    }
    h = host_port.substr(1, close - 1);
    p = host_port.substr(close + 2);
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return absl::InvalidArgumentError(absl::StrCat("'", host_port, "' is not HOST:PORT"));
    }
    h = host_port.substr(0, colon);
    p = host_port.substr(colon + 1);
  }
  int n = 0;
  if (!absl::SimpleAtoi(p, &n) || n < 0 || n > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", host_port, "' has no valid port (0-65535 expected)"));
  }
  *host = h;
  *port = n;
  return absl::OkStatus();
}

namespace {

// The flags' text as CLI11 leaves it (the last occurrence wins); checked by ParseWorkerFlags.
struct RawWorkerFlags {
  bool help = false;
  std::map<std::string, std::string> text;  // "--coordinator" -> "host:port"
};

std::unique_ptr<CLI::App> BuildWorkerApp(RawWorkerFlags* raw) {
  auto app = std::make_unique<CLI::App>("nanonas-worker", "nanonas-worker");
  app->set_help_flag();  // WorkerUsage() is the help text; --help is an ordinary flag
  app->allow_extras();   // unknown flags are reported by ParseWorkerFlags
  app->add_flag("--help,-h", raw->help);
  for (const char* name : {"--coordinator", "--metrics-listen", "--listen", "--advertise",
                           "--cache-dir", "--memory-budget", "--cache-bytes", "--slots"}) {
    app->add_option(name, raw->text[name])->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  return app;
}

// Stores the checked value of one given flag in `c`.
absl::Status ApplyWorkerFlag(const std::string& flag, const std::string& v, WorkerConfig* c) {
  if (flag == "--cache-dir") {
    c->cache_dir = v;
  } else if (flag == "--memory-budget" || flag == "--cache-bytes") {
    auto bytes = ParseBytes(v);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": ", bytes.status().message()));
    }
    (flag == "--memory-budget" ? c->memory_budget_bytes : c->cache_bytes) = *bytes;
  } else if (flag == "--slots") {
    if (!absl::SimpleAtoi(v, &c->slots) || c->slots < 1 || c->slots > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("--slots: '", v, "' is not a whole number from 1 to 1024"));
    }
  } else {  // HOST:PORT flags
    std::string host;
    int port;
    absl::Status s = SplitHostPort(v, &host, &port);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", s.message()));
    if (flag == "--coordinator") c->coordinator = v;
    if (flag == "--metrics-listen") c->metrics_listen = v;
    if (flag == "--listen") c->listen = v;
    if (flag == "--advertise") c->advertise = v;
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> WorkerFlags() {
  RawWorkerFlags raw;
  std::vector<std::string> flags;
  std::unique_ptr<CLI::App> app = BuildWorkerApp(&raw);
  for (const CLI::Option* o : app->get_options()) {
    for (const std::string& l : o->get_lnames()) flags.push_back("--" + l);
  }
  return flags;
}

absl::StatusOr<WorkerConfig> ParseWorkerFlags(const std::vector<std::string>& args) {
  RawWorkerFlags raw;
  std::unique_ptr<CLI::App> app = BuildWorkerApp(&raw);
  NANONAS_RETURN_IF_ERROR(ParseCommandLineArgs(*app, args, "see --help"));
  WorkerConfig c;
  if (raw.help) {
    c.help = true;
    return c;
  }
  if (!app->remaining().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown flag '", app->remaining()[0], "' (see --help)"));
  }
  for (const auto& [flag, value] : raw.text) {
    if (app->count(flag) == 0) continue;
    NANONAS_RETURN_IF_ERROR(ApplyWorkerFlag(flag, value, &c));
  }
  if (c.coordinator.empty())
    return absl::InvalidArgumentError("--coordinator HOST:PORT is required");
  if (c.metrics_listen.empty()) {
    return absl::InvalidArgumentError("--metrics-listen HOST:PORT is required");
  }
  return c;
}

namespace {
bool ReadLimit(const std::string& path, int64_t* out) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return false;
  if (text == "max") return false;
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v) || v <= 0) return false;
  if (v >= (int64_t{1} << 60)) return false;  // v1 "unlimited" is a huge page-rounded number
  *out = v;
  return true;
}
}  // namespace

int64_t DefaultMemoryBudget(const std::string& cgroup_root) {
  int64_t phys = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  int64_t limit = 0;
  if (ReadLimit(cgroup_root + "/memory.max", &limit) ||
      ReadLimit(cgroup_root + "/memory/memory.limit_in_bytes", &limit)) {
    return phys > 0 ? std::min(limit, phys) : limit;
  }
  return phys;
}

namespace {
// Reads "QUOTA PERIOD" (v2) or the two v1 files; false when no quota is set.
bool ReadCpuQuota(const std::string& cgroup_root, int64_t* quota, int64_t* period) {
  {
    std::ifstream in(cgroup_root + "/cpu.max");
    std::string q, p;
    if (in >> q) {
      if (q == "max") return false;
      if (!(in >> p)) p = "100000";  // the kernel's default period
      return absl::SimpleAtoi(q, quota) && absl::SimpleAtoi(p, period) && *quota > 0 && *period > 0;
    }
  }
  for (const char* dir : {"/cpu/", "/cpu,cpuacct/", "/"}) {
    std::ifstream qin(cgroup_root + dir + "cpu.cfs_quota_us");
    std::ifstream pin(cgroup_root + dir + "cpu.cfs_period_us");
    std::string q, p;
    if (!(qin >> q) || !(pin >> p)) continue;
    return absl::SimpleAtoi(q, quota) && absl::SimpleAtoi(p, period) && *quota > 0 &&
           *period > 0;  // a quota of -1: none
  }
  return false;
}
}  // namespace

int CgroupCpuLimit(const std::string& cgroup_root) {
  int64_t quota = 0, period = 0;
  if (!ReadCpuQuota(cgroup_root, &quota, &period)) return 0;
  return static_cast<int>(std::clamp<int64_t>(quota / period, 1, 1 << 20));
}

DefaultSlotCount DefaultSlots(int cores, const std::string& cgroup_root) {
  DefaultSlotCount d;
  cores = std::max(cores, 1);
  int64_t quota = 0, period = 0;
  if (ReadCpuQuota(cgroup_root, &quota, &period)) {
    const int cpus = CgroupCpuLimit(cgroup_root);
    d.slots = std::min(cpus, cores);
    d.source = absl::StrCat("the cgroup CPU quota (", quota, " us per ", period, " us = ", cpus,
                            " CPU", cpus == 1 ? "" : "s",
                            cpus > cores ? absl::StrCat(", capped at ", cores, " cores") : "", ")");
  } else {
    d.slots = cores;
    d.source = absl::StrCat(cores, " usable core", cores == 1 ? "" : "s", " (no cgroup CPU quota)");
  }
  return d;
}

int AvailableCores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  unsigned n = std::thread::hardware_concurrency();
  return n > 0 ? static_cast<int>(n) : 1;
}

absl::StatusOr<std::string> LocalAddressToward(const std::string& host_port) {
  std::string host;
  int port;
  absl::Status s = SplitHostPort(host_port, &host, &port);
  if (!s.ok()) return s;
  struct addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  struct addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port == 0 ? 1 : port).c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::string out;
  for (struct addrinfo* ai = res; ai != nullptr && out.empty(); ai = ai->ai_next) {
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      struct sockaddr_storage local;
      socklen_t len = sizeof(local);
      char buf[INET6_ADDRSTRLEN] = {0};
      if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
        if (local.ss_family == AF_INET) {
          inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&local)->sin_addr, buf, sizeof(buf));
          out = buf;
        } else if (local.ss_family == AF_INET6) {
          inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr, buf,
                    sizeof(buf));
          out = absl::StrCat("[", buf, "]");
        }
      }
    }
    close(fd);
  }
  freeaddrinfo(res);
  if (out.empty()) return absl::UnavailableError(absl::StrCat("no route to ", host_port));
  return out;
}

}  // namespace nanonas
