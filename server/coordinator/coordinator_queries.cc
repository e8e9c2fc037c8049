// Coordinator's read-only queries: jobs, their events (the watch stream) and artifacts, and the
// worker pool. Split from coordinator.cc to keep each file short; same class, same locking (each
// takes mu_; ReadArtifact reads the artifact file outside it).
#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/job_state.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

absl::Status JobNotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Jobs and their events

absl::StatusOr<v1::Job> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return JobNotFound(job_id);
  return rt->record.job();
}

absl::StatusOr<std::vector<v1::Job>> Coordinator::ListJobs(const std::vector<v1::JobState>& states,
                                                           int limit) {
  if (limit < 0) return absl::InvalidArgumentError("limit must not be negative");
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> out;
  for (auto it = job_order_.rbegin(); it != job_order_.rend(); ++it) {
    const v1::Job& job = FindJob(*it)->record.job();
    if (!states.empty() && std::find(states.begin(), states.end(), job.state()) == states.end()) {
      continue;
    }
    out.push_back(job);
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
  }
  return out;
}

absl::StatusOr<std::vector<v1::JobEvent>> Coordinator::NextEvents(const std::string& job_id,
                                                                  WatchCursor* cursor,
                                                                  absl::Duration wait,
                                                                  bool* ended) {
  absl::MutexLock lock(&mu_);
  *ended = false;
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return JobNotFound(job_id);
  std::vector<v1::JobEvent> out;
  if (!cursor->started) {
    NANONAS_ASSIGN_OR_RETURN(v1::JobEvent snap,
                             rt->log.Start(cursor, rt->record.job(), Now(), progress_counter_));
    out.push_back(std::move(snap));
  } else {
    auto has_news = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return shutting_down_ || rt->log.HasNews(*cursor) || IsTerminal(rt->record.state());
    };
    const absl::Time deadline = absl::Now() + wait;
    while (!has_news()) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) break;
    }
  }
  rt->log.Collect(cursor, progress_counter_, &out);
  *ended = (IsTerminal(rt->record.state()) && cursor->sequence >= rt->log.last_sequence()) ||
           shutting_down_;
  return out;
}

absl::StatusOr<std::vector<v1::Artifact>> Coordinator::ListArtifacts(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return JobNotFound(job_id);
  const auto& artifacts = rt->record.job().artifacts();
  return std::vector<v1::Artifact>(artifacts.begin(), artifacts.end());
}

absl::StatusOr<std::string> Coordinator::ReadArtifact(const std::string& job_id,
                                                      const std::string& name, int64_t offset,
                                                      int64_t length) {
  {
    absl::MutexLock lock(&mu_);
    JobRuntime* rt = FindJob(job_id);
    if (rt == nullptr) return JobNotFound(job_id);
    bool listed = false;
    std::vector<std::string> names;
    for (const auto& a : rt->record.job().artifacts()) {
      listed |= a.name() == name;
      names.push_back(a.name());
    }
    if (!listed) {
      return absl::NotFoundError(absl::StrCat(
          "job ", job_id, " has no artifact '", name, "'",
          names.empty()
              ? absl::StrCat(" (it has none yet: ", v1::JobState_Name(rt->record.state()), ")")
              : absl::StrCat("; it has: ", absl::StrJoin(names, ", "))));
    }
  }
  if (deps_.artifacts == nullptr) return absl::NotFoundError("this coordinator keeps no artifacts");
  return deps_.artifacts->Read(job_id, name, offset, length);
}

// ---------------------------------------------------------------------------------------------
// Workers

std::vector<WorkerStatus> Coordinator::ListWorkers() const {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerStatus> out;
  std::map<std::string, size_t> index;
  for (WorkerView& w : workers_.List(Now())) {
    index[w.desc.id()] = out.size();
    out.push_back(WorkerStatus{std::move(w), {}});
  }
  for (const auto& [eval_id, e] : evals_) {
    auto it = index.find(e.worker_id);
    if (it == index.end()) continue;
    out[it->second].evaluations.push_back(WorkerStatus::Work{
        e.job_id, e.k, e.c, !e.speculative && e.target.is_final(), e.speculative, e.started});
  }
  for (WorkerStatus& w : out) {
    std::stable_sort(w.evaluations.begin(), w.evaluations.end(),
                     [](const auto& a, const auto& b) { return a.started < b.started; });
  }
  return out;
}

int Coordinator::NumWorkers() const {
  absl::MutexLock lock(&mu_);
  return workers_.size();
}

int Coordinator::QueueDepth() const {
  absl::MutexLock lock(&mu_);
  int queued = 0;
  for (const auto& [id, rt] : jobs_) queued += rt.record.WaitsForWorker() ? 1 : 0;
  return queued;
}

int Coordinator::RunningEvaluations() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(evals_.size());
}

}  // namespace nanonas::coordinator
