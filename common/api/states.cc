#include "common/api/states.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nanonas {
namespace v1 = nanonas::v1;
namespace {

std::string WithoutPrefix(const std::string& name, absl::string_view prefix) {
  if (name.empty()) return "UNKNOWN";
  return absl::StartsWith(name, prefix) ? name.substr(prefix.size()) : name;
}

}  // namespace

std::string JobStateName(v1::JobState state) {
  return WithoutPrefix(v1::JobState_Name(state), "JOB_STATE_");
}

std::string CandidateStateName(v1::CandidateState state) {
  return WithoutPrefix(v1::CandidateState_Name(state), "CANDIDATE_STATE_");
}

absl::StatusOr<v1::JobState> ParseJobState(absl::string_view text) {
  v1::JobState state;
  if (v1::JobState_Parse(absl::StrCat("JOB_STATE_", absl::AsciiStrToUpper(text)), &state) &&
      state != v1::JOB_STATE_UNSPECIFIED) {
    return state;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "'", text,
      "' is not a job state (queued, preparing, running, succeeded, failed, cancelled)"));
}

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

bool IsFinal(v1::CandidateState state) {
  return state == v1::CANDIDATE_STATE_DONE || state == v1::CANDIDATE_STATE_INFEASIBLE ||
         state == v1::CANDIDATE_STATE_HOST_INFEASIBLE || state == v1::CANDIDATE_STATE_FAILED ||
         state == v1::CANDIDATE_STATE_CANCELLED;
}

}  // namespace nanonas
