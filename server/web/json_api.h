// The JSON API of the web view, transport-free: WebApi maps a GET of an /api/v1/... path with its
// query parameters to a response, over the Coordinator's read-only methods and the dataset
// registry. The HTTP layer (web_server.h) only moves bytes.
//
//   /api/v1/jobs?state=RUNNING,QUEUED&limit=N   {"jobs": [JobSummary (job_summary.h)]}, newest
//                                               first; states with or without "JOB_STATE_"
//   /api/v1/jobs/{id}                           the nanonas.v1.Job message
//   /api/v1/jobs/{id}/events?sequence=S&progress=P&wait_ms=W
//       WatchJob over HTTP (long poll): {"sequence", "progress", "ended", "events": [JobEvent]}.
//       Without `sequence` the first event is a snapshot of the job; with the cursor of the last
//       answer the call waits up to W ms (at most WebApiOptions::max_wait) for something new.
//   /api/v1/jobs/{id}/artifacts                 {"artifacts": [nanonas.v1.Artifact]}
//   /api/v1/jobs/{id}/artifacts/{name}          the file, streamed in chunks (Content-Type by
//                                               extension, Content-Disposition: attachment)
//   /api/v1/workers   {"workers": [{"id", "address", "cores", "slots", "running", "used_slots"
//                      (slots its evaluations take: a final training may take several),
//                      "memory_budget_bytes", "version", "last_heartbeat",
//                      "seconds_since_heartbeat", "said_busy", "evaluations": [{"job_id", "k",
//                      "c", "final_training", "speculative", "seconds"}]}]}
//   /api/v1/datasets  {"datasets": [{"id", "size_bytes", "source", "num_images", "class_names",
//                      "jobs": [{"id", "name", "state", "role": "train" | "test"}]}]}
//
// Messages of nanonas.v1 are protobuf JSON with the .proto field names and every field printed
// (int64 fields are strings, enums their names). Errors: {"error": {"code", "message"}} with the
// HTTP status of the absl code (INVALID_ARGUMENT 400, NOT_FOUND 404, others 500); an unknown
// path is 404.
//
// Thread-safe. Stop() ends waiting long polls (within WebApiOptions::wait_slice).
#ifndef NANONAS_SERVER_WEB_JSON_API_H_
#define NANONAS_SERVER_WEB_JSON_API_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/dataset_registry.h"

namespace nanonas::web {

struct ApiResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A download, instead of `body`: `size` bytes, read in chunks by read(offset, length).
  struct Stream {
    int64_t size = 0;
    std::function<absl::StatusOr<std::string>(int64_t offset, int64_t length)> read;
  };
  std::optional<Stream> stream;
};

struct WebApiOptions {
  absl::Duration max_wait = absl::Seconds(10);          // longest long poll
  absl::Duration wait_slice = absl::Milliseconds(250);  // Stop() is noticed this fast
  int64_t chunk_bytes = 64 << 10;                       // download chunk size
};

// The response of an error status (also used by the HTTP layer).
ApiResponse ErrorResponse(const absl::Status& status);
int HttpStatusOf(absl::StatusCode code);

class WebApi {
 public:
  // `datasets` may be null (the dataset list is then empty).
  WebApi(coordinator::Coordinator* core, coordinator::DatasetRegistry* datasets,
         WebApiOptions options = {});

  // `path` is percent-decoded; `params` the query parameters.
  ApiResponse Get(const std::string& path, const std::map<std::string, std::string>& params);

  void Stop() { stopping_ = true; }

  // The routes, callable directly (tests).
  absl::StatusOr<std::string> Jobs(const std::map<std::string, std::string>& params);
  absl::StatusOr<std::string> Job(const std::string& id);
  absl::StatusOr<std::string> Events(const std::string& id,
                                     const std::map<std::string, std::string>& params);
  absl::StatusOr<std::string> Artifacts(const std::string& id);
  absl::StatusOr<ApiResponse> Download(const std::string& id, const std::string& name);
  absl::StatusOr<std::string> Workers();
  absl::StatusOr<std::string> Datasets();

 private:
  coordinator::Coordinator* const core_;
  coordinator::DatasetRegistry* const datasets_;
  const WebApiOptions options_;
  std::atomic<bool> stopping_{false};
};

// Content type of an artifact by its extension (application/octet-stream when unknown).
std::string ArtifactContentType(const std::string& name);

}  // namespace nanonas::web

#endif  // NANONAS_SERVER_WEB_JSON_API_H_
