#include "worker/service/worker_service.h"

#include <string>

#include "common/rpc/status.h"

namespace nanonas {

grpc::Status WorkerServiceImpl::Describe(grpc::ServerContext*, const nanonas::v1::DescribeRequest*,
                                         nanonas::v1::WorkerDescription* response) {
  std::lock_guard<std::mutex> lock(mu_);
  *response = description_;
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Evaluate(grpc::ServerContext* context,
                                         const nanonas::v1::EvaluateRequest* request,
                                         grpc::ServerWriter<nanonas::v1::EvaluateEvent>* writer) {
  auto result = runner_->Run(
      *request, [writer](const nanonas::v1::EvaluateEvent& e) { writer->Write(e); },
      [context] { return context->IsCancelled(); });
  if (!result.ok()) return ToGrpcStatus(result.status());
  if (result->state() == nanonas::v1::CANDIDATE_STATE_CANCELLED) {
    return grpc::Status(grpc::StatusCode::CANCELLED, result->error());
  }
  nanonas::v1::EvaluateEvent last;
  *last.mutable_result() = *result;
  writer->Write(last);
  return grpc::Status::OK;
}

}  // namespace nanonas
