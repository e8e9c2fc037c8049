#include "server/grpc/worker_connector.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/rpc/status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "nanonas/v1/nanonas.grpc.pb.h"

namespace nanonas::grpc_layer {

namespace v1 = nanonas::v1;

namespace {

struct EvalState {
  grpc::ClientContext context;
};

class GrpcRunningEvaluation : public coordinator::RunningEvaluation {
 public:
  explicit GrpcRunningEvaluation(std::shared_ptr<EvalState> state) : state_(std::move(state)) {}
  void Cancel() override { state_->context.TryCancel(); }

 private:
  std::shared_ptr<EvalState> state_;
};

}  // namespace

std::shared_ptr<grpc::Channel> GrpcWorkerConnector::ChannelFor(const std::string& address) {
  absl::MutexLock lock(&mu_);
  auto it = channels_.find(address);
  if (it != channels_.end()) return it->second;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);  // final-training results carry weights
  // Reconnect quickly after a worker restart on the same address.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  channels_[address] = channel;
  return channel;
}

std::unique_ptr<coordinator::RunningEvaluation> GrpcWorkerConnector::Start(
    const v1::WorkerDescription& worker, const v1::EvaluateRequest& request,
    coordinator::EvaluationCallbacks callbacks) {
  auto state = std::make_shared<EvalState>();
  auto channel = ChannelFor(worker.address());
  std::thread([state, channel, request, callbacks = std::move(callbacks)]() {
    auto stub = v1::Worker::NewStub(channel);
    // Fail fast when the worker is not there at all; once connected the stream may run for hours.
    state->context.set_wait_for_ready(false);
    auto reader = stub->Evaluate(&state->context, request);
    v1::EvaluateEvent event;
    std::optional<v1::EvaluateResult> result;
    while (reader->Read(&event)) {
      if (event.has_result()) {
        result = event.result();
      } else if (callbacks.on_event) {
        callbacks.on_event(event);
      }
    }
    grpc::Status status = reader->Finish();
    if (result.has_value()) {
      callbacks.on_done(*std::move(result));
    } else if (!status.ok()) {
      callbacks.on_done(FromGrpcStatus(status));
    } else {
      callbacks.on_done(absl::InternalError("the worker closed the stream without a result"));
    }
  }).detach();
  return std::make_unique<GrpcRunningEvaluation>(std::move(state));
}

}  // namespace nanonas::grpc_layer
