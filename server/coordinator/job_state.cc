#include "server/coordinator/job_state.h"

#include "absl/strings/str_cat.h"
#include "common/base/units.h"
#include "google/protobuf/util/time_util.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

bool IsTerminalJob(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

bool IsFinalCandidate(v1::CandidateState s) {
  return s == v1::CANDIDATE_STATE_DONE || s == v1::CANDIDATE_STATE_INFEASIBLE ||
         s == v1::CANDIDATE_STATE_HOST_INFEASIBLE || s == v1::CANDIDATE_STATE_FAILED ||
         s == v1::CANDIDATE_STATE_CANCELLED;
}

namespace {

std::string FormatFigure(const std::string& resource, int64_t v) {
  if (resource == "macc") return FormatCount(v);
  return FormatBytes(v);
}

}  // namespace

std::string DescribeViolations(const google::protobuf::RepeatedPtrField<v1::Violation>& vs) {
  std::string out;
  for (const auto& v : vs) {
    if (!out.empty()) out += "; ";
    absl::StrAppend(&out, v.resource(), " ", FormatFigure(v.resource(), v.value()),
                    " exceeds the limit ", FormatFigure(v.resource(), v.limit()), " by ",
                    FormatFigure(v.resource(), v.excess()));
  }
  return out;
}

google::protobuf::Timestamp TimestampOf(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace nanonas::coordinator
