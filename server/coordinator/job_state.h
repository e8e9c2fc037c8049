// The one home, inside the coordinator, of job and candidate state facts: which states are
// terminal, the human text of a limit violation, and the proto timestamp of a time. Pure
// functions; thread-safe. (A shared common/ home for these is planned; repoint here.)
#ifndef NANONAS_SERVER_COORDINATOR_JOB_STATE_H_
#define NANONAS_SERVER_COORDINATOR_JOB_STATE_H_

#include <string>

#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "google/protobuf/timestamp.pb.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas::coordinator {

// SUCCEEDED, FAILED or CANCELLED: the job will not change again.
bool IsTerminalJob(nanonas::v1::JobState s);
// DONE, INFEASIBLE, HOST_INFEASIBLE, FAILED or CANCELLED: the candidate (or the final training)
// has its outcome.
bool IsFinalCandidate(nanonas::v1::CandidateState s);

// "ram_bytes 1.2 MiB exceeds the limit 1 MiB by 200 KiB; ..." (MACC as counts, the rest as bytes).
std::string DescribeViolations(
    const google::protobuf::RepeatedPtrField<nanonas::v1::Violation>& violations);

google::protobuf::Timestamp TimestampOf(absl::Time t);

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_JOB_STATE_H_
