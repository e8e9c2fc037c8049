#include "server/coordinator/worker_pool.h"

#include <algorithm>

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

bool WorkerPool::Register(const v1::WorkerDescription& worker, absl::Time now) {
  auto [it, inserted] = workers_.try_emplace(worker.id());
  it->second.desc = worker;
  it->second.last_seen = now;
  return inserted;
}

bool WorkerPool::Touch(const std::string& id, absl::Time now) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return false;
  it->second.last_seen = now;
  return true;
}

bool WorkerPool::Remove(const std::string& id) { return workers_.erase(id) > 0; }

std::vector<std::pair<std::string, absl::Duration>> WorkerPool::Silent(
    absl::Time now, absl::Duration timeout) const {
  std::vector<std::pair<std::string, absl::Duration>> out;
  for (const auto& [id, w] : workers_) {
    if (now - w.last_seen > timeout) out.emplace_back(id, now - w.last_seen);
  }
  return out;
}

const v1::WorkerDescription* WorkerPool::Find(const std::string& id) const {
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second.desc;
}

void WorkerPool::Started(const std::string& id, uint64_t dispatch, int slots) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  it->second.running++;
  it->second.used_slots += std::max(1, slots);
  it->second.last_dispatch = dispatch;
}

void WorkerPool::Ended(const std::string& id, int slots) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  it->second.running = std::max(0, it->second.running - 1);
  it->second.used_slots = std::max(0, it->second.used_slots - std::max(1, slots));
}

void WorkerPool::BusyUntil(const std::string& id, absl::Time until) {
  auto it = workers_.find(id);
  if (it != workers_.end()) it->second.busy_until = until;
}

std::vector<WorkerSlot> WorkerPool::Slots(absl::Time now) const {
  std::vector<WorkerSlot> out;
  for (const auto& [id, w] : workers_) {
    WorkerSlot s;
    s.worker_id = id;
    s.free_slots = std::max(1, w.desc.slots()) - w.used_slots;
    s.available = now >= w.busy_until;
    s.last_dispatch = w.last_dispatch;
    out.push_back(std::move(s));
  }
  return out;
}

int WorkerPool::Busy() const {
  int busy = 0;
  for (const auto& [id, w] : workers_) busy += w.running > 0 ? 1 : 0;
  return busy;
}

std::vector<WorkerView> WorkerPool::List(absl::Time now) const {
  std::vector<WorkerView> out;
  for (const auto& [id, w] : workers_) {
    out.push_back(WorkerView{w.desc, w.last_seen, w.running, w.used_slots, now < w.busy_until});
  }
  return out;
}

}  // namespace nanonas::coordinator
