#include "worker/service/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace nanonas {

std::string ChildExit::Describe() const {
  if (exited) return absl::StrCat("exited with status ", exit_code);
  return absl::StrCat("killed by signal ", signal, " (", strsignal(signal), ")");
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("no program to spawn");
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    close(in_pipe[0]);
    close(in_pipe[1]);
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 clears O_CLOEXEC on the new descriptor; every other pipe end closes at exec.
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in_pipe[0]);
  close(out_pipe[1]);
  if (rc != 0) {
    close(in_pipe[1]);
    close(out_pipe[0]);
    return absl::InternalError(absl::StrCat("could not start ", argv[0], ": ", std::strerror(rc)));
  }
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->pid_ = pid;
  child->stdin_fd_ = in_pipe[1];
  child->stdout_fd_ = out_pipe[0];
  return child;
}

ChildProcess::~ChildProcess() {
  CloseStdin();
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

void ChildProcess::CloseStdin() {
  if (stdin_fd_ >= 0) {
    close(stdin_fd_);
    stdin_fd_ = -1;
  }
}

void ChildProcess::Kill(int signal) {
  if (!reaped_ && pid_ > 0) ::kill(pid_, signal);
}

int64_t ChildProcess::StatusBytes(absl::string_view key) const {
  if (reaped_ || pid_ <= 0) return 0;
  std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v(line);
    if (absl::ConsumePrefix(&v, key) && absl::ConsumePrefix(&v, ":")) {
      v = absl::StripAsciiWhitespace(v);
      absl::ConsumeSuffix(&v, "kB");
      int64_t kib = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(v), &kib)) return kib * 1024;
      return 0;
    }
  }
  return 0;
}

int64_t ChildProcess::CurrentRssBytes() const { return StatusBytes("VmRSS"); }
int64_t ChildProcess::CurrentRssAnonBytes() const { return StatusBytes("RssAnon"); }

absl::StatusOr<ChildExit> ChildProcess::Wait() {
  while (true) {
    auto r = Reap(0);
    if (!r.ok()) return r.status();
    if (r->has_value()) return **r;
  }
}

absl::StatusOr<std::optional<ChildExit>> ChildProcess::TryWait() { return Reap(WNOHANG); }

absl::StatusOr<std::optional<ChildExit>> ChildProcess::Reap(int options) {
  if (reaped_) return absl::FailedPreconditionError("child already reaped");
  int status = 0;
  struct rusage usage;
  std::memset(&usage, 0, sizeof(usage));
  pid_t r;
  do {
    r = wait4(pid_, &status, options, &usage);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return absl::InternalError(absl::StrCat("wait4: ", std::strerror(errno)));
  if (r == 0) return std::optional<ChildExit>();
  reaped_ = true;
  ChildExit exit;
  if (WIFEXITED(status)) {
    exit.exited = true;
    exit.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
  }
  exit.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux: KiB
  return std::optional<ChildExit>(exit);
}

std::string SelfExecutablePath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace nanonas
