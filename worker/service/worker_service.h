// The gRPC face of the worker (service nanonas.v1.Worker): a thin layer over EvaluationRunner.
// Thread-safe (the runner is).
#ifndef NANONAS_WORKER_SERVICE_WORKER_SERVICE_H_
#define NANONAS_WORKER_SERVICE_WORKER_SERVICE_H_

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "nanonas/v1/nanonas.grpc.pb.h"
#include "worker/service/evaluation_runner.h"

namespace nanonas {

class WorkerServiceImpl final : public nanonas::v1::Worker::Service {
 public:
  // `runner` must outlive the service.
  WorkerServiceImpl(EvaluationRunner* runner, nanonas::v1::WorkerDescription description)
      : runner_(runner), description_(std::move(description)) {}

  // Describe's answer (set once the listening port is known).
  void SetDescription(const nanonas::v1::WorkerDescription& description) {
    std::lock_guard<std::mutex> lock(mu_);
    description_ = description;
  }

  grpc::Status Describe(grpc::ServerContext* context, const nanonas::v1::DescribeRequest* request,
                        nanonas::v1::WorkerDescription* response) override;
  grpc::Status Evaluate(grpc::ServerContext* context, const nanonas::v1::EvaluateRequest* request,
                        grpc::ServerWriter<nanonas::v1::EvaluateEvent>* writer) override;

 private:
  EvaluationRunner* runner_;
  std::mutex mu_;
  nanonas::v1::WorkerDescription description_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_WORKER_SERVICE_H_
