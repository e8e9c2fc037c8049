// The `nanonas` commands over a Coordinator stub. Output goes to `out` (results) and `err`
// (progress notes and errors); every function returns the process exit code (cli.h).
#ifndef NANONAS_CLIENT_COMMANDS_H_
#define NANONAS_CLIENT_COMMANDS_H_

#include <iosfwd>
#include <memory>
#include <string>

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

class Cli {
 public:
  // `interactive`: stdout is a terminal (watch redraws the table in place).
  Cli(std::shared_ptr<nanonas::v1::Coordinator::StubInterface> stub, GlobalOptions global,
      std::ostream& out, std::ostream& err, bool interactive);

  int Run(const Command& command);

  int Submit(const Command& command);
  int Watch(const std::string& job_id);
  int List(const Command& command);
  // With `out_dir`: downloads every artifact into it (created), checks size and SHA-256, and prints
  // the paths (kExitNotFound when the job has no artifacts yet).
  int Get(const std::string& job_id, const std::string& out_dir = "");
  int Cancel(const std::string& job_id);
  int Targets();

  // Uploads a dataset folder; returns the exit code and fills `info` on success.
  int Upload(const std::string& dir, const std::string& name, nanonas::v1::DatasetInfo* info);

 private:
  struct WatchScreen;
  void SetDeadline(grpc::ClientContext* ctx, double seconds) const;

  std::shared_ptr<nanonas::v1::Coordinator::StubInterface> stub_;
  GlobalOptions global_;
  std::ostream& out_;
  std::ostream& err_;
  bool interactive_;
};

}  // namespace nanonas

#endif  // NANONAS_CLIENT_COMMANDS_H_
