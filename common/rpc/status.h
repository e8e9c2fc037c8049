// The one conversion between absl::Status and grpc::Status, for the coordinator's gRPC layer and
// the worker alike (the two code enums share their numbers). Header-only; thread-safe.
#ifndef NANONAS_COMMON_RPC_STATUS_H_
#define NANONAS_COMMON_RPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace nanonas {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace nanonas

#endif  // NANONAS_COMMON_RPC_STATUS_H_
