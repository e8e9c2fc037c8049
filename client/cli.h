// Command-line parsing of `nanonas` (transport-free, unit-tested) and its exit codes.
#ifndef NANONAS_CLIENT_CLI_H_
#define NANONAS_CLIENT_CLI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/api/states.h"  // JobStateName, CandidateStateName, ParseJobState, IsTerminal
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

// Exit codes a script can rely on (also in Usage()).
enum ExitCode {
  kExitOk = 0,         // done; `watch`: the job SUCCEEDED
  kExitJobFailed = 1,  // the job FAILED or was CANCELLED
  kExitUsage = 2,      // bad command line or a request the server rejected as invalid
  kExitServer = 3,     // server unreachable, timed out or failed
  kExitNotFound = 4,   // no such job or dataset
};

inline constexpr char kDefaultServer[] = "localhost:50051";

struct GlobalOptions {
  std::string server = kDefaultServer;  // --server, else $NANONAS_SERVER, else the default
  bool json = false;                    // --json
  double timeout_seconds = 10;          // --timeout: deadline of every unary call
};

struct Command {
  enum class Kind { kHelp, kSubmit, kWatch, kList, kGet, kCancel, kTargets, kHealth };
  Kind kind = Kind::kHelp;
  GlobalOptions global;
  // submit
  std::string dataset_dir;
  std::string test_dir;
  nanonas::v1::JobSpec spec;  // dataset ids are filled in after the uploads
  bool watch = false;         // submit --watch
  // watch / get / cancel
  std::string job_id;
  std::string out_dir;  // get --out DIR: download the job's artifacts there
  // health: the grpc.health.v1 service name ("" = the whole server)
  std::string health_service;
  // list
  std::vector<nanonas::v1::JobState> states;
  int limit = 0;
};

// Parses everything after the program name (CLI11: one subcommand, global flags anywhere,
// `--flag value` and `--flag=value`). `env_server` is $NANONAS_SERVER (null or empty: unset).
// INVALID_ARGUMENT with a message that says what to fix.
absl::StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args,
                                         const char* env_server);

std::string Usage();

// Every long flag the parser accepts ("--server", "--ram", ...), for checking Usage() lists them.
std::vector<std::string> CommandLineFlags();

}  // namespace nanonas

#endif  // NANONAS_CLIENT_CLI_H_
