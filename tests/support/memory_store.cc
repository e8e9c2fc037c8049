#include "tests/support/memory_store.h"

#include "absl/strings/str_cat.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

absl::Status MemoryStore::Commit(const v1::Job& job, const v1::JobEvent* event) {
  if (job.id().empty()) return absl::InvalidArgumentError("job id is empty");
  absl::MutexLock lock(&mu_);
  auto& list = events_[job.id()];
  if (event != nullptr) {
    if (event->has_progress()) return absl::InvalidArgumentError("progress events are live-only");
    const int64_t expected = static_cast<int64_t>(list.size()) + 1;
    if (event->sequence() != expected) {
      return absl::InvalidArgumentError(absl::StrCat("event sequence ", event->sequence(),
                                                     " is not the job's next (", expected, ")"));
    }
    list.push_back(event->SerializeAsString());
  }
  if (jobs_.find(job.id()) == jobs_.end()) order_.push_back(job.id());
  jobs_[job.id()] = job.SerializeAsString();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Job>> MemoryStore::LoadJobs() {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> out;
  for (const auto& id : order_) {
    v1::Job job;
    job.ParseFromString(jobs_[id]);
    out.push_back(std::move(job));
  }
  return out;
}

absl::StatusOr<std::vector<v1::JobEvent>> MemoryStore::LoadEvents(const std::string& job_id,
                                                                  int64_t after_sequence) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::JobEvent> out;
  for (const auto& bytes : events_[job_id]) {
    v1::JobEvent ev;
    ev.ParseFromString(bytes);
    if (ev.sequence() > after_sequence) out.push_back(std::move(ev));
  }
  return out;
}

}  // namespace nanonas::coordinator
