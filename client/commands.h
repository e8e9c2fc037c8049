// The `nanonas` commands over a Coordinator stub. Output goes to `out` (results) and `err`
// (progress notes and errors); every function returns the process exit code (cli.h).
#ifndef NANONAS_CLIENT_COMMANDS_H_
#define NANONAS_CLIENT_COMMANDS_H_

#include <chrono>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "client/cli.h"
#include "grpcpp/grpcpp.h"
#include "nanonas/v1/nanonas.grpc.pb.h"

namespace nanonas {

// Maps a failed RPC to an exit code and prints a message that says what to do.
int ReportRpcError(const grpc::Status& status, const std::string& what, const GlobalOptions& g,
                   std::ostream& err);

// The search path as a table (and the result when the job has ended), for `get` and `watch`.
// `progress` (may be null) draws a progress bar for the running candidate.
std::string RenderJob(const nanonas::v1::Job& job, const nanonas::v1::CandidateProgress* progress);

// "[##########----------]  50%"
std::string ProgressBar(double fraction, int width);

// Protobuf JSON, snake_case names, default values printed, one line.
std::string ToJson(const google::protobuf::Message& message);

// How `submit` retries (client/submit.cc).
struct RetryPolicy {
  int submit_attempts = 5;  // SubmitJob on UNAVAILABLE / DEADLINE_EXCEEDED, same request_id
  int upload_attempts = 3;  // UploadDataset on UNAVAILABLE, streamed again (content-addressed)
  std::chrono::milliseconds first_backoff{500};  // then doubled: 0.5, 1, 2, 4 s
};

// A new idempotency key for SubmitJobRequest.request_id: 128 random bits as 32 hex digits.
std::string NewRequestId();

// The wait before retry number `retry` (1-based): first_backoff * 2^(retry-1).
std::chrono::milliseconds RetryBackoff(const RetryPolicy& policy, int retry);

// Whether a failed SubmitJob may be sent again with the same request_id.
bool IsRetryableSubmit(grpc::StatusCode code);

// The client channel's arguments: large messages and keepalive pings (every 310 s of silence,
// also on a stream that sends no data), so that a stream without a deadline (upload, watch)
// notices a dead server, without tripping a default server's ping limits (one per 5 min).
grpc::ChannelArguments ClientChannelArguments();
// A channel to `server` with ClientChannelArguments().
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server);

class Cli {
 public:
  // `interactive`: stdout is a terminal (watch redraws the table in place). `progress`: stderr
  // is a terminal (submit redraws its upload and preparation progress in place).
  Cli(std::shared_ptr<nanonas::v1::Coordinator::StubInterface> stub, GlobalOptions global,
      std::ostream& out, std::ostream& err, bool interactive, bool progress = false);

  void set_retry_policy(const RetryPolicy& policy) { retry_ = policy; }

  int Run(const Command& command);

  int Submit(const Command& command);
  int Watch(const std::string& job_id);
  int List(const Command& command);
  // With `out_dir`: downloads every artifact into it (created), checks size and SHA-256, and prints
  // the paths (kExitNotFound when the job has no artifacts yet).
  int Get(const std::string& job_id, const std::string& out_dir = "");
  int Cancel(const std::string& job_id);
  int Targets();

  // Uploads a dataset folder as a tar streamed in bounded chunks (retried on UNAVAILABLE);
  // returns the exit code and fills `info` on success.
  int Upload(const std::string& dir, const std::string& name, nanonas::v1::DatasetInfo* info);

 private:
  struct WatchScreen;
  struct UploadAttempt;
  void SetDeadline(grpc::ClientContext* ctx, double seconds) const;
  // One streaming of the archive; `local` is set when the failure is ours (a file), not the RPC's.
  grpc::Status UploadOnce(const UploadAttempt& attempt, nanonas::v1::DatasetInfo* info,
                          absl::Status* local);
  // SubmitJob with retries; the exit code.
  int SubmitWithRetry(const nanonas::v1::SubmitJobRequest& request,
                      nanonas::v1::SubmitJobResponse* response);
  // Follows a submitted job through QUEUED and PREPARING on stderr (a line redrawn in place):
  // kExitOk once it runs, kExitJobFailed (with its error) when it ended first.
  // `name`: the dataset's name for humans.
  int FollowPreparation(const std::string& job_id, const std::string& name);
  void Pause(int retry) const;

  std::shared_ptr<nanonas::v1::Coordinator::StubInterface> stub_;
  GlobalOptions global_;
  std::ostream& out_;
  std::ostream& err_;
  bool interactive_;
  bool progress_;
  RetryPolicy retry_;
};

}  // namespace nanonas

#endif  // NANONAS_CLIENT_COMMANDS_H_
