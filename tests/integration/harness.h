// Real processes on 127.0.0.1 for the integration tests: a coordinator, workers, free ports,
// readiness through grpc.health.v1, /metrics over plain HTTP, generated image datasets.
// Every child is SIGKILLed and reaped when its Process object goes away.
#ifndef NANONAS_TESTS_INTEGRATION_HARNESS_H_
#define NANONAS_TESTS_INTEGRATION_HARNESS_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/status.h"  // FromGrpcStatus
#include "grpcpp/channel.h"
#include "nanonas/v1/nanonas.grpc.pb.h"

namespace nanonas::integration {

// A child process with stdout/stderr in `log_path`.
class Process {
 public:
  Process(std::vector<std::string> argv, std::string log_path);
  ~Process();  // SIGKILL + reap
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Alive();
  void Signal(int sig);
  // Waits for exit up to `timeout`; returns the wait status or -1 on timeout.
  int Wait(absl::Duration timeout);
  std::string LogTail(size_t bytes = 3000) const;
  // PIDs of this process's direct children (from /proc).
  std::vector<pid_t> Children() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string log_path_;
};

int FreePort();

// grpc.health.v1.Health/Check for `service` ("" = the server); true when SERVING.
bool HealthServing(const std::shared_ptr<grpc::Channel>& channel, const std::string& service = "");
// grpc.reflection.v1alpha list_services: the service names the server reports.
absl::StatusOr<std::vector<std::string>> ReflectionServices(
    const std::shared_ptr<grpc::Channel>& channel);
// Polls HealthServing until true or the timeout.
bool WaitHealthy(const std::string& address, absl::Duration timeout);

// GET http://host:port/metrics; the body.
absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path);
// Runs `promtool check metrics` on the text; OK or the findings.
absl::Status PromtoolCheck(const std::string& text, const std::string& scratch_path);
// The value of an unlabelled sample line "name value" (or name{labels} value), -1 if absent.
double MetricValue(const std::string& text, const std::string& name_with_labels);

// Writes root/<class>/<i>.png: class "horizontal" has horizontal stripes, "vertical" vertical
// ones, with noise; `classes` 1 or 2.
void WriteStripes(const std::string& root, int per_class, int size, int classes, uint64_t seed);
// A tar archive (in memory) of the files under `root`, named "<top>/<relative path>".
std::string TarFolder(const std::string& root, const std::string& top);

// Uploads a tar archive through Coordinator.UploadDataset in 64 KiB chunks.
absl::StatusOr<nanonas::v1::DatasetInfo> Upload(nanonas::v1::Coordinator::Stub* stub,
                                                const std::string& bytes, int64_t announced);

}  // namespace nanonas::integration

#endif  // NANONAS_TESTS_INTEGRATION_HARNESS_H_
