// The worker's side of the Coordinator service: joins with RegisterWorker (retrying with
// exponential backoff until the coordinator is up), heartbeats, registers again when the
// coordinator answers "unknown" (after a coordinator restart) or after heartbeats keep failing,
// leaves with LeaveWorker, and downloads datasets with FetchDataset.
//
// Thread-safe. Start() runs one background thread; Stop() ends it and leaves.
#ifndef NANONAS_WORKER_SERVICE_COORDINATOR_LINK_H_
#define NANONAS_WORKER_SERVICE_COORDINATOR_LINK_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/channel.h"
#include "nanonas/v1/nanonas.grpc.pb.h"

namespace nanonas {

class CoordinatorLink {
 public:
  CoordinatorLink(std::shared_ptr<grpc::Channel> channel, nanonas::v1::WorkerDescription self,
                  std::function<int()> busy_slots);
  ~CoordinatorLink();

  void Start();
  // Stops heartbeating and sends LeaveWorker (2 s deadline) when registered.
  void Stop();

  bool registered() const { return registered_.load(); }
  int registrations() const { return registrations_.load(); }

  // Downloads dataset `id` (FetchDataset stream, 10 min deadline), passing each chunk to `sink`
  // as it arrives (nothing is buffered here): DatasetCache's Fetcher. NOT_FOUND / UNAVAILABLE
  // etc. as the coordinator answers; RESOURCE_EXHAUSTED when the announced size is over
  // max_bytes (> 0); DATA_LOSS when fewer or more bytes arrive than announced; the sink's error
  // (the download is cancelled).
  absl::Status FetchDataset(const std::string& id, int64_t max_bytes,
                            const std::function<absl::Status(absl::string_view chunk)>& sink);

 private:
  void Loop();
  bool Register();
  bool WaitFor(int ms);  // false when stopping

  std::unique_ptr<nanonas::v1::Coordinator::Stub> stub_;
  const nanonas::v1::WorkerDescription self_;
  std::function<int()> busy_slots_;
  std::atomic<bool> registered_{false};
  std::atomic<int> registrations_{0};
  int heartbeat_ms_ = 1000;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_COORDINATOR_LINK_H_
