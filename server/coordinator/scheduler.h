// Which evaluation runs on which worker slot next: a PURE policy (no threads, no gRPC, no clock,
// no coordinator state). Input: a snapshot of the work waiting and of the worker slots; output:
// the assignments, in the order the coordinator applies them, each possibly preempting a running
// speculative evaluation first. The coordinator builds the snapshot under its lock, asks the
// policy and applies the answer, so a different policy (fair share, memory-aware placement)
// replaces OldestJobFirstPolicy without touching the rest.
//
// Thread-safe: policies are immutable; Schedule is const.
#ifndef NANONAS_SERVER_COORDINATOR_SCHEDULER_H_
#define NANONAS_SERVER_COORDINATOR_SCHEDULER_H_

#include <cstdint>
#include <string>
#include <vector>

namespace nanonas::coordinator {

// One evaluation that could start.
struct WorkItem {
  enum class Kind {
    kCandidate,    // the candidate a job's search asked for (required)
    kFinal,        // a job's final training (required)
    kSpeculative,  // a candidate the search will probably ask for next (optional)
  };
  Kind kind = Kind::kCandidate;
  std::string job_id;
  int64_t job_rank = 0;  // the job's age: lower = submitted earlier
  int k = 0, c = 0;
  int index = -1;  // kCandidate: its position on the job's path
};

// A registered worker as the policy sees it.
struct WorkerSlot {
  std::string worker_id;
  int free_slots = 0;          // slots minus running evaluations (may be <= 0)
  bool available = true;       // false: said "all slots busy" a moment ago, skip it
  uint64_t last_dispatch = 0;  // when it was last sent work (0: never); larger = more recent
};

// A running evaluation the policy may cancel to free its slot.
struct RunningSpeculation {
  std::string evaluation_id;
  std::string worker_id;
};

struct SchedulingSnapshot {
  std::vector<WorkItem> required;     // waiting candidates and final trainings
  std::vector<WorkItem> speculative;  // evaluations ahead of time that would be useful now
  std::vector<WorkerSlot> workers;
  std::vector<RunningSpeculation> running_speculation;  // in the order to preempt them
};

struct Assignment {
  WorkItem work;
  std::string worker_id;
  std::string preempt;  // when not empty: cancel this speculative evaluation first
  int threads = 1;      // training threads = the worker slots the evaluation takes (>= 1)
};

class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual std::vector<Assignment> Schedule(const SchedulingSnapshot& snapshot) const = 0;
};

// Today's policy. Required work before speculative work; among each, the oldest job first (then
// the snapshot's order). Each item goes to the worker with the most free slots; among equally
// free workers, the one sent work longest ago (a worker that just joined first). Required work
// finding no free slot preempts the first running speculation whose worker is registered; when
// nothing can be freed, scheduling stops (no speculation while required work waits).
// Threads: once all required work of the snapshot is placed, each final training assigned takes
// the free slots left on its worker (threads = 1 + those; the first final training on a worker
// takes them all) before speculative work fills the rest: a final training is one long run the
// job waits for, and the engine trains one batch on several threads. Candidates and speculative
// evaluations take one slot (threads = 1).
class OldestJobFirstPolicy : public SchedulingPolicy {
 public:
  std::vector<Assignment> Schedule(const SchedulingSnapshot& snapshot) const override;
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_SCHEDULER_H_
