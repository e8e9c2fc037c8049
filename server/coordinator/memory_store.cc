#include "server/coordinator/memory_store.h"

#include "absl/strings/str_cat.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

absl::Status MemoryStore::PutJob(const v1::Job& job) {
  if (job.id().empty()) return absl::InvalidArgumentError("job id is empty");
  absl::MutexLock lock(&mu_);
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

absl::Status MemoryStore::AppendEvent(const std::string& job_id, const v1::JobEvent& event) {
  absl::MutexLock lock(&mu_);
  auto& list = events_[job_id];
  if (!list.empty()) {
    v1::JobEvent last;
    last.ParseFromString(list.back());
    if (event.sequence() <= last.sequence()) {
      return absl::InvalidArgumentError(absl::StrCat("event sequence ", event.sequence(),
                                                     " does not follow ", last.sequence()));
    }
  }
  list.push_back(event.SerializeAsString());
  return absl::OkStatus();
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
