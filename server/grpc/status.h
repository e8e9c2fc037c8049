// The one place where absl::Status becomes grpc::Status and back (codes share their numbers).
#ifndef NANONAS_SERVER_GRPC_STATUS_H_
#define NANONAS_SERVER_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace nanonas::grpc_layer {

inline grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

inline absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace nanonas::grpc_layer

#endif  // NANONAS_SERVER_GRPC_STATUS_H_
