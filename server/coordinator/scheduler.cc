#include "server/coordinator/scheduler.h"

#include <algorithm>
#include <cstddef>

namespace nanonas::coordinator {

namespace {

std::vector<WorkItem> OldestFirst(std::vector<WorkItem> items) {
  std::stable_sort(items.begin(), items.end(),
                   [](const WorkItem& a, const WorkItem& b) { return a.job_rank < b.job_rank; });
  return items;
}

// The worker with the most free slots (at least one), or null; ties: the one sent work longest
// ago, then the first in the snapshot.
WorkerSlot* FreeWorker(std::vector<WorkerSlot>& workers) {
  WorkerSlot* best = nullptr;
  for (auto& w : workers) {
    if (!w.available || w.free_slots <= 0) continue;
    if (best == nullptr || w.free_slots > best->free_slots ||
        (w.free_slots == best->free_slots && w.last_dispatch < best->last_dispatch)) {
      best = &w;
    }
  }
  return best;
}

}  // namespace

std::vector<Assignment> OldestJobFirstPolicy::Schedule(const SchedulingSnapshot& snapshot) const {
  std::vector<WorkerSlot> workers = snapshot.workers;
  std::vector<RunningSpeculation> preemptible = snapshot.running_speculation;
  uint64_t clock = 0;
  for (const auto& w : workers) clock = std::max(clock, w.last_dispatch);
  std::vector<Assignment> out;
  auto assign = [&](const WorkItem& work, WorkerSlot* w, std::string preempt) {
    w->free_slots--;
    w->last_dispatch = ++clock;
    out.push_back(Assignment{work, w->worker_id, std::move(preempt)});
  };
  for (const WorkItem& work : OldestFirst(snapshot.required)) {
    if (WorkerSlot* w = FreeWorker(workers)) {
      assign(work, w, "");
      continue;
    }
    // No free slot: take one from a speculative evaluation, whatever the worker's state.
    WorkerSlot* freed = nullptr;
    std::string preempt;
    for (size_t i = 0; i < preemptible.size() && freed == nullptr; ++i) {
      for (auto& w : workers) {
        if (w.worker_id != preemptible[i].worker_id) continue;
        freed = &w;
        preempt = preemptible[i].evaluation_id;
        preemptible.erase(preemptible.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    }
    if (freed == nullptr) return out;  // no slot anywhere
    freed->free_slots++;
    assign(work, freed, preempt);
  }
  // Final trainings take the slots left on their workers.
  for (Assignment& a : out) {
    if (a.work.kind != WorkItem::Kind::kFinal) continue;
    for (auto& w : workers) {
      if (w.worker_id != a.worker_id || w.free_slots <= 0) continue;
      a.threads += w.free_slots;
      w.free_slots = 0;
    }
  }
  for (const WorkItem& work : OldestFirst(snapshot.speculative)) {
    WorkerSlot* w = FreeWorker(workers);
    if (w == nullptr) break;
    assign(work, w, "");
  }
  return out;
}

}  // namespace nanonas::coordinator
