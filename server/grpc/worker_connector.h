// WorkerConnector over gRPC: one Worker.Evaluate server stream per evaluation, read on its own
// thread; Cancel() cancels the RPC (the worker then stops its child process). Channels are cached
// per worker address. Thread-safe.
#ifndef NANONAS_SERVER_GRPC_WORKER_CONNECTOR_H_
#define NANONAS_SERVER_GRPC_WORKER_CONNECTOR_H_

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "grpcpp/channel.h"
#include "server/coordinator/interfaces.h"

namespace nanonas::grpc_layer {

class GrpcWorkerConnector : public coordinator::WorkerConnector {
 public:
  std::unique_ptr<coordinator::RunningEvaluation> Start(
      const nanonas::v1::WorkerDescription& worker, const nanonas::v1::EvaluateRequest& request,
      coordinator::EvaluationCallbacks callbacks) override;

 private:
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& address);
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nanonas::grpc_layer

#endif  // NANONAS_SERVER_GRPC_WORKER_CONNECTOR_H_
