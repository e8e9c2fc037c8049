// JobState / CandidateState as users read them: the names the CLI and reports print ("RUNNING",
// "HOST_INFEASIBLE"), the parser of `--state` values, and the one definition of which states end
// a job or a candidate. Pure functions; thread-safe.
#ifndef NANONAS_COMMON_API_STATES_H_
#define NANONAS_COMMON_API_STATES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

// The enum name without its prefix: JOB_STATE_RUNNING -> "RUNNING"; "UNKNOWN" for a value the
// proto does not define.
std::string JobStateName(nanonas::v1::JobState state);
// CANDIDATE_STATE_HOST_INFEASIBLE -> "HOST_INFEASIBLE"; "UNKNOWN" for an undefined value.
std::string CandidateStateName(nanonas::v1::CandidateState state);

// "running" / "RUNNING" -> JOB_STATE_RUNNING (case-insensitive; UNSPECIFIED is refused).
// INVALID_ARGUMENT listing the accepted names otherwise.
absl::StatusOr<nanonas::v1::JobState> ParseJobState(absl::string_view text);

// SUCCEEDED, FAILED or CANCELLED: the job will not change again.
bool IsTerminal(nanonas::v1::JobState state);
// DONE, INFEASIBLE, HOST_INFEASIBLE, FAILED or CANCELLED: the candidate will not change again.
bool IsFinal(nanonas::v1::CandidateState state);

}  // namespace nanonas

#endif  // NANONAS_COMMON_API_STATES_H_
