#include "server/coordinator/job_state.h"

#include "google/protobuf/util/time_util.h"

namespace nanonas::coordinator {

google::protobuf::Timestamp TimestampOf(absl::Time t) {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

}  // namespace nanonas::coordinator
