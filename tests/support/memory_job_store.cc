#include "tests/support/memory_job_store.h"

#include <algorithm>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/base/status_macros.h"

namespace nanonas {
namespace {

struct JobRow {
  int64_t order = 0;  // creation order
  v1::Job header;     // without candidates and artifacts
  std::map<int, v1::Candidate> candidates;
  std::vector<v1::JobEvent> events;  // events[i].sequence() == i + 1
  std::map<std::string, ArtifactRecord> artifacts;
};

struct Data {
  std::map<std::string, JobRow> jobs;
  int64_t next_order = 1;
};

v1::Job Header(v1::Job job) {
  job.clear_candidates();
  job.clear_artifacts();
  return job;
}

v1::Job Assemble(const JobRow& row) {
  v1::Job job = row.header;
  for (const auto& [seq, cand] : row.candidates) *job.add_candidates() = cand;
  for (const auto& [name, art] : row.artifacts) *job.add_artifacts() = art.artifact;
  return job;
}

absl::Status UnknownJob(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
}

class MemoryJobStore : public JobStore {
 public:
  absl::StatusOr<WriteResult> Write(const WriteBatch& batch) override {
    NANONAS_RETURN_IF_ERROR(ValidateBatch(batch));
    absl::MutexLock lock(&mu_);
    Data next = data_;  // applied to a copy: all or nothing
    WriteResult result;
    for (const WriteBatch::Op& op : batch.ops()) {
      NANONAS_RETURN_IF_ERROR(Apply(op, next, result));
    }
    data_ = std::move(next);
    return result;
  }

  absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                       int64_t after_sequence, int limit) override {
    absl::MutexLock lock(&mu_);
    auto it = data_.jobs.find(job_id);
    if (it == data_.jobs.end()) return UnknownJob(job_id);
    std::vector<v1::JobEvent> out;
    for (const v1::JobEvent& e : it->second.events) {
      if (e.sequence() <= after_sequence) continue;
      if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
      out.push_back(e);
    }
    return out;
  }

  absl::StatusOr<StoreSnapshot> LoadAll() override {
    absl::MutexLock lock(&mu_);
    StoreSnapshot snap;
    std::vector<const JobRow*> rows;
    for (const auto& [id, row] : data_.jobs) rows.push_back(&row);
    std::sort(rows.begin(), rows.end(),
              [](const JobRow* a, const JobRow* b) { return a->order < b->order; });
    for (const JobRow* row : rows) snap.jobs.push_back(Assemble(*row));
    return snap;
  }

 private:
  static absl::Status Apply(const WriteBatch::Op& op, Data& data, WriteResult& result) {
    if (auto* o = std::get_if<WriteBatch::CreateJobOp>(&op)) {
      if (data.jobs.count(o->job.id())) {
        return absl::AlreadyExistsError(absl::StrCat("job ", o->job.id(), " already exists"));
      }
      JobRow& row = data.jobs[o->job.id()];
      row.order = data.next_order++;
      row.header = Header(o->job);
      return absl::OkStatus();
    }
    if (auto* o = std::get_if<WriteBatch::UpdateJobOp>(&op)) {
      auto it = data.jobs.find(o->job.id());
      if (it == data.jobs.end()) return UnknownJob(o->job.id());
      it->second.header = Header(o->job);
      return absl::OkStatus();
    }
    if (auto* o = std::get_if<WriteBatch::PutCandidateOp>(&op)) {
      auto it = data.jobs.find(o->job_id);
      if (it == data.jobs.end()) return UnknownJob(o->job_id);
      it->second.candidates[o->candidate.sequence()] = o->candidate;
      return absl::OkStatus();
    }
    if (auto* o = std::get_if<WriteBatch::AppendEventOp>(&op)) {
      auto it = data.jobs.find(o->job_id);
      if (it == data.jobs.end()) return UnknownJob(o->job_id);
      v1::JobEvent e = o->event;
      e.set_sequence(static_cast<int64_t>(it->second.events.size()) + 1);
      it->second.events.push_back(e);
      result.events.push_back(std::move(e));
      return absl::OkStatus();
    }
    if (auto* o = std::get_if<WriteBatch::PutArtifactOp>(&op)) {
      auto it = data.jobs.find(o->artifact.job_id);
      if (it == data.jobs.end()) return UnknownJob(o->artifact.job_id);
      it->second.artifacts[o->artifact.artifact.name()] = o->artifact;
      return absl::OkStatus();
    }
    return absl::InternalError("unknown write batch operation");
  }

  absl::Mutex mu_;
  Data data_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<JobStore> NewInMemoryJobStore() { return std::make_unique<MemoryJobStore>(); }

}  // namespace nanonas
