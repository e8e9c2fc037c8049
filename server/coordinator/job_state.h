// The coordinator's time in the API's messages. Which states are terminal and how a violation
// reads live in common/api (states.h, violations.h); this header brings them in for the units.
// Pure functions; thread-safe.
#ifndef NANONAS_SERVER_COORDINATOR_JOB_STATE_H_
#define NANONAS_SERVER_COORDINATOR_JOB_STATE_H_

#include "absl/time/time.h"
#include "common/api/states.h"
#include "common/api/violations.h"
#include "google/protobuf/timestamp.pb.h"

namespace nanonas::coordinator {

google::protobuf::Timestamp TimestampOf(absl::Time t);

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_JOB_STATE_H_
