#include "worker/service/coordinator_link.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/rpc/status.h"
#include "grpcpp/client_context.h"

namespace nanonas {
namespace {

void SetDeadline(grpc::ClientContext* ctx, int ms) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

}  // namespace

CoordinatorLink::CoordinatorLink(std::shared_ptr<grpc::Channel> channel,
                                 nanonas::v1::WorkerDescription self,
                                 std::function<int()> busy_slots)
    : stub_(nanonas::v1::Coordinator::NewStub(channel)),
      self_(std::move(self)),
      busy_slots_(std::move(busy_slots)) {}

CoordinatorLink::~CoordinatorLink() { Stop(); }

void CoordinatorLink::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void CoordinatorLink::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (registered_.exchange(false)) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, 2000);
    nanonas::v1::LeaveRequest req;
    req.set_worker_id(self_.id());
    nanonas::v1::LeaveResponse resp;
    grpc::Status s = stub_->LeaveWorker(&ctx, req, &resp);
    NANONAS_LOG(INFO) << "left the coordinator"
                      << (s.ok() ? ""
                                 : absl::StrCat(" (LeaveWorker failed: ", s.error_message(), ")"));
  }
}

bool CoordinatorLink::WaitFor(int ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
}

bool CoordinatorLink::Register() {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 5000);
  nanonas::v1::RegisterWorkerRequest req;
  *req.mutable_worker() = self_;
  nanonas::v1::RegisterWorkerResponse resp;
  grpc::Status s = stub_->RegisterWorker(&ctx, req, &resp);
  if (!s.ok()) {
    NANONAS_LOG(DEBUG) << "RegisterWorker: " << s.error_message();
    return false;
  }
  heartbeat_ms_ = resp.heartbeat_interval_ms() > 0 ? resp.heartbeat_interval_ms() : 1000;
  registered_ = true;
  ++registrations_;
  NANONAS_LOG(INFO) << "registered with the coordinator as " << self_.id() << " at "
                    << self_.address() << " (heartbeat every " << heartbeat_ms_ << " ms)";
  return true;
}

void CoordinatorLink::Loop() {
  int backoff_ms = 200;
  int failures = 0;
  bool warned = false;
  while (true) {
    if (!registered_) {
      if (Register()) {
        backoff_ms = 200;
        failures = 0;
        warned = false;
      } else {
        if (!warned) {
          NANONAS_LOG(WARNING) << "coordinator not reachable yet; retrying with backoff";
          warned = true;
        }
        if (!WaitFor(backoff_ms)) return;
        backoff_ms = std::min(backoff_ms * 2, 5000);
        continue;
      }
    }
    if (!WaitFor(heartbeat_ms_)) return;
    grpc::ClientContext ctx;
    SetDeadline(&ctx, std::max(heartbeat_ms_, 2000));
    nanonas::v1::HeartbeatRequest req;
    req.set_worker_id(self_.id());
    req.set_busy_slots(busy_slots_ ? busy_slots_() : 0);
    nanonas::v1::HeartbeatResponse resp;
    grpc::Status s = stub_->Heartbeat(&ctx, req, &resp);
    if (s.ok() && !resp.known()) {
      NANONAS_LOG(INFO)
          << "the coordinator does not know this worker (restarted?): registering again";
      registered_ = false;
    } else if (!s.ok()) {
      if (++failures >= 3) {
        NANONAS_LOG(WARNING) << "heartbeats failing (" << s.error_message()
                             << "): registering again";
        registered_ = false;
        failures = 0;
      }
    } else {
      failures = 0;
    }
  }
}

absl::Status CoordinatorLink::FetchDataset(
    const std::string& id, int64_t max_bytes,
    const std::function<absl::Status(absl::string_view chunk)>& sink) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, 10 * 60 * 1000);
  nanonas::v1::FetchDatasetRequest req;
  req.set_id(id);
  auto reader = stub_->FetchDataset(&ctx, req);
  nanonas::v1::DatasetChunk chunk;
  int64_t total = -1, received = 0;
  absl::Status stopped;
  while (reader->Read(&chunk)) {
    if (total < 0 && chunk.total_bytes() > 0) {
      total = chunk.total_bytes();
      if (max_bytes > 0 && total > max_bytes) {
        stopped = absl::ResourceExhaustedError(
            absl::StrCat("dataset ", id, " has ", total, " bytes, more than this worker accepts (",
                         max_bytes, ")"));
      }
    }
    received += static_cast<int64_t>(chunk.data().size());
    if (stopped.ok() && total >= 0 && received > total) {
      stopped = absl::DataLossError(
          absl::StrCat("dataset ", id, ": received more than the announced ", total, " bytes"));
    }
    if (stopped.ok()) stopped = sink(chunk.data());
    if (!stopped.ok()) {
      ctx.TryCancel();
      while (reader->Read(&chunk)) {
      }
      (void)reader->Finish();
      return stopped;
    }
  }
  absl::Status s = FromGrpcStatus(reader->Finish());
  if (!s.ok()) return s;
  if (total >= 0 && received != total) {
    return absl::DataLossError(
        absl::StrCat("dataset ", id, ": received ", received, " bytes of ", total));
  }
  return absl::OkStatus();
}

}  // namespace nanonas
