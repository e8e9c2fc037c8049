#include "worker/service/worker_config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/base/units.h"

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
  --help                    this text

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

absl::StatusOr<WorkerConfig> ParseWorkerFlags(const std::vector<std::string>& args) {
  WorkerConfig c;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::string value;
    bool has_value = false;
    size_t eq = flag.find('=');
    if (flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      c.help = true;
      continue;
    }
    auto need = [&]() -> absl::StatusOr<std::string> {
      if (has_value) return value;
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value (see --help)"));
      }
      return args[++i];
    };
    if (flag == "--coordinator" || flag == "--metrics-listen" || flag == "--listen" ||
        flag == "--advertise" || flag == "--cache-dir") {
      auto v = need();
      if (!v.ok()) return v.status();
      if (flag == "--cache-dir") {
        c.cache_dir = *v;
        continue;
      }
      std::string host;
      int port;
      absl::Status s = SplitHostPort(*v, &host, &port);
      if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", s.message()));
      if (flag == "--coordinator") c.coordinator = *v;
      if (flag == "--metrics-listen") c.metrics_listen = *v;
      if (flag == "--listen") c.listen = *v;
      if (flag == "--advertise") c.advertise = *v;
    } else if (flag == "--memory-budget" || flag == "--cache-bytes") {
      auto v = need();
      if (!v.ok()) return v.status();
      auto bytes = ParseBytes(*v);
      if (!bytes.ok())
        return absl::InvalidArgumentError(absl::StrCat(flag, ": ", bytes.status().message()));
      (flag == "--memory-budget" ? c.memory_budget_bytes : c.cache_bytes) = *bytes;
    } else if (flag == "--slots") {
      auto v = need();
      if (!v.ok()) return v.status();
      if (!absl::SimpleAtoi(*v, &c.slots) || c.slots < 1 || c.slots > 1024) {
        return absl::InvalidArgumentError(
            absl::StrCat("--slots: '", *v, "' is not a whole number from 1 to 1024"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '", args[i], "' (see --help)"));
    }
  }
  if (c.help) return c;
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
