// The registered workers: registration, heartbeats, expiry of silent workers, and each worker's
// running evaluations, which give the free slots the scheduler sees. Knows nothing of jobs.
//
// Not thread-safe: the coordinator holds its lock around every call.
#ifndef NANONAS_SERVER_COORDINATOR_WORKER_POOL_H_
#define NANONAS_SERVER_COORDINATOR_WORKER_POOL_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "nanonas/v1/nanonas.pb.h"
#include "server/coordinator/scheduler.h"

namespace nanonas::coordinator {

// A registered worker as the web view shows it (read-only copy).
struct WorkerView {
  nanonas::v1::WorkerDescription desc;
  absl::Time last_seen;    // last registration or heartbeat
  int running = 0;         // evaluations dispatched to it, not finished
  int used_slots = 0;      // slots they take (a final training may take several)
  bool said_busy = false;  // said "all slots busy" a moment ago
};

class WorkerPool {
 public:
  // Adds the worker or replaces its description; true when it is new.
  bool Register(const nanonas::v1::WorkerDescription& worker, absl::Time now);
  // Records a heartbeat; false for an unknown worker.
  bool Touch(const std::string& id, absl::Time now);
  bool Contains(const std::string& id) const { return workers_.count(id) > 0; }
  // Forgets the worker; false when it was unknown.
  bool Remove(const std::string& id);
  // Workers silent for longer than `timeout`, with how long each has been silent.
  std::vector<std::pair<std::string, absl::Duration>> Silent(absl::Time now,
                                                             absl::Duration timeout) const;
  // The description of a registered worker (null when unknown).
  const nanonas::v1::WorkerDescription* Find(const std::string& id) const;

  // An evaluation taking `slots` slots (its threads) started on the worker; `dispatch` numbers
  // dispatches (increasing).
  void Started(const std::string& id, uint64_t dispatch, int slots = 1);
  // An evaluation on the worker that took `slots` slots ended (or was given up).
  void Ended(const std::string& id, int slots = 1);
  // The worker said all its slots are busy: leave it out of Slots() until `until`.
  void BusyUntil(const std::string& id, absl::Time until);

  // Every worker as the scheduler sees it, in id order.
  std::vector<WorkerSlot> Slots(absl::Time now) const;
  int size() const { return static_cast<int>(workers_.size()); }
  // Workers running at least one evaluation.
  int Busy() const;
  // Every worker with its state, in id order.
  std::vector<WorkerView> List(absl::Time now) const;

 private:
  struct Entry {
    nanonas::v1::WorkerDescription desc;
    absl::Time last_seen;
    int running = 0;                               // evaluations dispatched, not finished
    int used_slots = 0;                            // the slots they take
    absl::Time busy_until = absl::InfinitePast();  // said "all slots busy": skip until then
    uint64_t last_dispatch = 0;                    // 0: none yet
  };
  std::map<std::string, Entry> workers_;
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_WORKER_POOL_H_
