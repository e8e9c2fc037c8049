// A child process spawned with posix_spawn (never fork() from a process with gRPC threads) whose
// stdin and stdout are pipes to the parent; stderr is inherited so its logs reach the worker's.
//
// Thread-safety: one owner thread; Kill() may be called from any thread.
#ifndef NANONAS_WORKER_SERVICE_CHILD_PROCESS_H_
#define NANONAS_WORKER_SERVICE_CHILD_PROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nanonas {

struct ChildExit {
  bool exited = false;  // normal exit: exit_code valid
  int exit_code = 0;
  int signal = 0;  // killed by this signal when !exited
  // wait4 rusage ru_maxrss. Beware: a posix_spawn child inherits the parent's high-water mark
  // through exec, so this is at least the parent's RSS at spawn time.
  int64_t peak_rss_bytes = 0;
  std::string Describe()
      const;  // "exited with status 3", "killed by signal 11 (Segmentation fault)"
};

class ChildProcess {
 public:
  // Starts argv[0] (a path) with argv. The child gets default signal dispositions and an empty
  // signal mask whatever the parent's. INTERNAL when posix_spawn fails (names the program).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv);

  ~ChildProcess();  // kills (SIGKILL) and reaps a child still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  int stdin_fd() const { return stdin_fd_; }    // write end of the child's stdin, -1 once closed
  int stdout_fd() const { return stdout_fd_; }  // read end of the child's stdout
  void CloseStdin();

  void Kill(int signal);

  // Resident memory now (VmRSS of /proc/<pid>/status), 0 when unknown or gone.
  int64_t CurrentRssBytes() const;
  // Anonymous resident memory now (RssAnon of /proc/<pid>/status: heap, stacks, private pages;
  // not the file-backed pages of a memory-mapped dataset), 0 when unknown or gone.
  int64_t CurrentRssAnonBytes() const;

  // Blocks until the child ends and reaps it (wait4), once.
  absl::StatusOr<ChildExit> Wait();
  // Reaps the child if it has ended (wait4 WNOHANG): its exit, or nullopt while it runs.
  absl::StatusOr<std::optional<ChildExit>> TryWait();

 private:
  ChildProcess() = default;
  absl::StatusOr<std::optional<ChildExit>> Reap(int options);
  int64_t StatusBytes(absl::string_view key) const;  // "<key>: N kB" of /proc/<pid>/status
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  bool reaped_ = false;
};

// The path of the running executable (/proc/self/exe), for re-executing ourselves.
std::string SelfExecutablePath();

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_CHILD_PROCESS_H_
