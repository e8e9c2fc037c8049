#include "server/coordinator/coordinator.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/base/units.h"
#include "server/coordinator/job_artifacts.h"
#include "server/coordinator/job_state.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

std::string NewJobId() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  return absl::StrFormat("job-%012x", rng() & 0xffffffffffffULL);
}

absl::Status JobNotFound(const std::string& job_id) {
  return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
}

// SubmitJobRequest.request_id: empty, or 1-128 printable ASCII characters.
absl::Status CheckRequestId(const std::string& id) {
  const bool printable = std::all_of(id.begin(), id.end(), [](char ch) {
    return static_cast<unsigned char>(ch) >= 0x20 && static_cast<unsigned char>(ch) < 0x7f;
  });
  if (id.size() > 128 || !printable) {
    return absl::InvalidArgumentError(
        "request_id must be 1-128 printable ASCII characters (a UUID chosen once per job)");
  }
  return absl::OkStatus();
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, CoordinatorDeps deps)
    : options_(std::move(options)),
      deps_(std::move(deps)),
      policy_(deps_.policy != nullptr ? deps_.policy : &default_policy_) {}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  for (auto& [id, handle] : handles_) handle->Cancel();
  for (auto& [id, p] : preparations_) {
    p.cancelled = true;
    if (p.handle) p.handle->Cancel();
  }
  changed_.SignalAll();
}

Coordinator::~Coordinator() {
  Shutdown();
  absl::MutexLock lock(&mu_);
  // Connector and preparer callbacks reference this object: wait (bounded) until they have run.
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](Coordinator* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(c->mu_) {
                             return c->handles_.empty() && c->preparations_.empty();
                           },
                           this),
                       absl::Seconds(10));
}

absl::Time Coordinator::Now() const { return options_.clock ? options_.clock() : absl::Now(); }

Coordinator::JobRuntime* Coordinator::FindJob(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

Coordinator::JobRuntime& Coordinator::AddRuntime(v1::Job job) {
  const std::string id = job.id();
  auto [it, inserted] = jobs_.try_emplace(id, std::move(job), options_.progress_buffer);
  if (inserted) job_order_.push_back(id);
  JobRuntime& rt = it->second;
  rt.feasible = MakeFeasibility(rt.record.job(), deps_.resource_model, deps_.host_memory_model);
  return rt;
}

// ---------------------------------------------------------------------------------------------
// Persistence

absl::Status Coordinator::Commit(JobRuntime& rt, v1::JobEvent event, bool keep_on_failure) {
  rt.log.Stamp(&event, Now());
  absl::Status st = deps_.store->Commit(rt.record.job(), &event);
  if (deps_.metrics && (st.ok() || keep_on_failure)) {
    deps_.metrics->ObserveEvent(rt.record.job(), event);  // queue waits, job and final durations
  }
  if (!st.ok()) {
    NANONAS_LOG(ERROR) << "store: cannot save job " << rt.record.id() << ": " << st;
    if (!keep_on_failure) rt.record.Rollback();
    return absl::Status(
        st.code(), absl::StrCat("the store cannot save job ", rt.record.id(), ": ", st.message()));
  }
  rt.record.MarkDurable();
  rt.log.Append(std::move(event));
  changed_.SignalAll();
  return absl::OkStatus();
}

absl::Status Coordinator::Apply(JobRuntime& rt, absl::StatusOr<v1::JobEvent> event) {
  if (!event.ok()) {
    NANONAS_LOG(ERROR) << "job " << rt.record.id() << ": refused: " << event.status();
    return event.status();
  }
  return Commit(rt, *std::move(event));
}

absl::Status Coordinator::MoveJob(JobRuntime& rt, v1::JobState to, const std::string& error) {
  const v1::JobState from = rt.record.state();
  NANONAS_ASSIGN_OR_RETURN(v1::JobEvent ev, rt.record.MoveJob(to, error, Now()));
  NANONAS_LOG(INFO) << "job " << rt.record.id() << " " << v1::JobState_Name(from) << " -> "
                    << v1::JobState_Name(to) << (error.empty() ? "" : ": ") << error;
  return Commit(rt, std::move(ev));
}

void Coordinator::Abort(JobRuntime& rt, const absl::Status& st) {
  if (st.ok() || IsTerminal(rt.record.state())) return;
  CancelPreparation(rt);
  CancelEvaluationsOf(rt.record.id());
  if (rt.search && !rt.search->Done()) rt.search->Cancel(std::string(st.message()));
  auto ev = rt.record.MoveJob(v1::JOB_STATE_FAILED, std::string(st.message()), Now());
  if (!ev.ok()) return;
  NANONAS_LOG(ERROR) << "job " << rt.record.id() << " -> JOB_STATE_FAILED: " << st.message();
  // Failed in memory even when the store refuses this write too.
  (void)Commit(rt, *std::move(ev), /*keep_on_failure=*/true);
}

// ---------------------------------------------------------------------------------------------
// Clients

absl::StatusOr<v1::Job> Coordinator::SubmitJob(const v1::JobSpec& raw,
                                               const std::string& request_id) {
  NANONAS_RETURN_IF_ERROR(CheckRequestId(request_id));
  NANONAS_ASSIGN_OR_RETURN(v1::JobSpec spec, NormalizeSpec(raw));
  {
    absl::MutexLock lock(&mu_);
    NANONAS_ASSIGN_OR_RETURN(std::optional<v1::Job> made, FindRequest(request_id, spec));
    if (made.has_value()) return *std::move(made);
  }
  NANONAS_RETURN_IF_ERROR(CheckDatasets(spec));  // the registry's records: fast, no decoding
  uint64_t preparation = 0;
  PreparationRequest request;
  v1::Job job;
  {
    absl::MutexLock lock(&mu_);
    // The same request may have raced this one past the first check.
    NANONAS_ASSIGN_OR_RETURN(std::optional<v1::Job> made, FindRequest(request_id, spec));
    if (made.has_value()) return *std::move(made);
    job.set_id(NewJobId());
    *job.mutable_spec() = spec;
    job.set_state(v1::JOB_STATE_QUEUED);
    *job.mutable_created() = TimestampOf(Now());
    job.set_request_id(request_id);
    // The QUEUED record must be durable before the job is acknowledged.
    v1::JobEvent queued;
    queued.set_sequence(1);
    *queued.mutable_time() = TimestampOf(Now());
    queued.set_job_state(v1::JOB_STATE_QUEUED);
    *queued.mutable_job() = job;
    NANONAS_RETURN_IF_ERROR(deps_.store->Commit(job, &queued));
    JobRuntime& rt = AddRuntime(job);
    rt.log.Append(std::move(queued));
    if (!request_id.empty()) requests_[request_id] = job.id();
    request = NewPreparation(rt, &preparation);
    NANONAS_LOG(INFO) << "job " << job.id() << " submitted: dataset " << spec.dataset_id() << " at "
                      << spec.input().height() << "x" << spec.input().width() << "x"
                      << spec.input().channels() << "; preparing it";
    UpdateMetrics();
  }
  StartPreparation(preparation, request);
  return job;
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return JobNotFound(job_id);
  if (IsTerminal(rt->record.state())) {
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " has already ended (",
                                                      v1::JobState_Name(rt->record.state()), ")"));
  }
  CancelPreparation(*rt);
  CancelEvaluationsOf(job_id);
  absl::Status st;
  const std::string reason = "the job was cancelled";
  for (int i = 0; i < rt->record.job().candidates_size() && st.ok(); ++i) {
    const EvalTarget t = EvalTarget::Candidate(i);
    if (IsFinal(rt->record.StateOf(t))) continue;
    st = Settle(*rt, t, rt->record.Cancel(t, reason), "", "");
  }
  const v1::CandidateState fs = rt->record.StateOf(EvalTarget::Final());
  if (st.ok() && (fs == v1::CANDIDATE_STATE_PENDING || fs == v1::CANDIDATE_STATE_RUNNING)) {
    st = Apply(*rt, rt->record.Cancel(EvalTarget::Final(), reason));
  }
  if (rt->search && !rt->search->Done()) rt->search->Cancel(reason);
  if (st.ok()) st = MoveJob(*rt, v1::JOB_STATE_CANCELLED, "");
  Abort(*rt, st);
  Dispatch();
  UpdateMetrics();
  if (!st.ok()) return st;
  return rt->record.job();
}

// ---------------------------------------------------------------------------------------------
// Workers

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::WorkerDescription& worker) {
  if (worker.id().empty()) return absl::InvalidArgumentError("worker.id is empty");
  if (worker.address().empty()) {
    return absl::InvalidArgumentError("worker.address is empty: give the host:port to dial");
  }
  if (worker.slots() < 0) return absl::InvalidArgumentError("worker.slots is negative");
  absl::MutexLock lock(&mu_);
  const bool inserted = workers_.Register(worker, Now());
  NANONAS_LOG(INFO) << "worker " << worker.id() << (inserted ? " joined" : " registered again")
                    << " at " << worker.address() << " (" << std::max(1, worker.slots())
                    << " slots, " << FormatBytes(worker.memory_budget_bytes()) << ", "
                    << worker.version() << ")";
  Dispatch();
  UpdateMetrics();
  v1::RegisterWorkerResponse resp;
  resp.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  return resp;
}

v1::HeartbeatResponse Coordinator::Heartbeat(const v1::HeartbeatRequest& request) {
  absl::MutexLock lock(&mu_);
  v1::HeartbeatResponse resp;
  resp.set_known(workers_.Touch(request.worker_id(), Now()));
  return resp;
}

absl::Status Coordinator::LeaveWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  if (!workers_.Contains(worker_id)) {
    return absl::NotFoundError(absl::StrCat("worker '", worker_id, "' is not registered"));
  }
  DropWorker(worker_id, "the worker left");
  Dispatch();
  UpdateMetrics();
  return absl::OkStatus();
}

void Coordinator::Tick() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, silence] : workers_.Silent(Now(), options_.worker_timeout)) {
    DropWorker(id, absl::StrCat("no heartbeat for ", absl::FormatDuration(silence)));
  }
  Dispatch();
  UpdateMetrics();
}

// ---------------------------------------------------------------------------------------------
// Metrics and introspection

void Coordinator::UpdateMetrics() {
  if (deps_.metrics == nullptr) return;
  std::map<int, int> by_state;
  int queued = 0;
  for (const auto& [id, rt] : jobs_) {
    by_state[rt.record.state()]++;
    queued += rt.record.WaitsForWorker() ? 1 : 0;
  }
  for (v1::JobState s : {v1::JOB_STATE_QUEUED, v1::JOB_STATE_PREPARING, v1::JOB_STATE_RUNNING,
                         v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    deps_.metrics->SetJobs(s, by_state[s]);
  }
  deps_.metrics->SetQueueDepth(queued);
  deps_.metrics->SetWorkers(static_cast<double>(workers_.size()), workers_.Busy());
}

// ---------------------------------------------------------------------------------------------
// The search of a job

absl::Status Coordinator::StepJob(JobRuntime& rt) {
  while (rt.record.state() == v1::JOB_STATE_RUNNING) {
    NANONAS_RETURN_IF_ERROR(RecordSettled(rt));
    auto next = rt.search->Done() ? std::nullopt : rt.search->Next();
    if (!next.has_value()) {
      NANONAS_RETURN_IF_ERROR(FinishSearch(rt));
      break;
    }
    const v1::Job& job = rt.record.job();
    if (job.candidates_size() > static_cast<int>(rt.search->Path().size())) {
      // The candidate on the way is already on the job's path (queued or running).
      const v1::Candidate& last = job.candidates(job.candidates_size() - 1);
      if (last.k() != next->spec.k || last.c() != next->spec.c) {
        NANONAS_RETURN_IF_ERROR(
            MoveJob(rt, v1::JOB_STATE_FAILED,
                    absl::StrCat("internal: queued candidate (", last.k(), ",", last.c(),
                                 ") is not the search's (", next->spec.k, ",", next->spec.c, ")")));
      }
      break;
    }
    PathEntry entry;
    entry.sequence = next->sequence;
    entry.k = next->spec.k;
    entry.c = next->spec.c;
    entry.figures = next->figures;
    bool again = false;
    NANONAS_RETURN_IF_ERROR(QueueNext(rt, entry, &again));
    if (!again) break;
  }
  PruneSpeculation(rt);
  return absl::OkStatus();
}

absl::Status Coordinator::RecordSettled(JobRuntime& rt) {
  const auto& path = rt.search->Path();
  for (size_t i = rt.record.job().candidates_size(); i < path.size(); ++i) {
    NANONAS_ASSIGN_OR_RETURN(v1::JobEvent ev, rt.record.AddSettledCandidate(path[i]));
    const v1::Candidate& cand = ev.candidate();
    if (deps_.metrics) deps_.metrics->CountCandidate(cand.state());
    NANONAS_LOG(INFO) << "job " << rt.record.id() << " candidate (" << cand.k() << "," << cand.c()
                      << ") " << v1::CandidateState_Name(cand.state())
                      << " without training: " << cand.error();
    NANONAS_RETURN_IF_ERROR(Commit(rt, std::move(ev)));
  }
  return absl::OkStatus();
}

absl::Status Coordinator::QueueNext(JobRuntime& rt, const PathEntry& next, bool* again) {
  const int index = rt.record.AddCandidate(next);
  const EvalTarget t = EvalTarget::Candidate(index);
  // Evaluated ahead of time?
  auto ahead = rt.speculative.find({next.k, next.c});
  if (ahead != rt.speculative.end()) {
    const JobRuntime::SpeculativeResult r = ahead->second;
    rt.speculative.erase(ahead);
    NANONAS_RETURN_IF_ERROR(rt.record.StartAttempt(t, r.worker).status());  // persisted below
    NANONAS_LOG(INFO) << "job " << rt.record.id() << " candidate (" << next.k << "," << next.c
                      << ") was evaluated ahead of time";
    NANONAS_RETURN_IF_ERROR(FinishCandidate(rt, index, r.result, r.worker, r.seconds));
    *again = true;
    return absl::OkStatus();
  }
  // Running ahead of time: adopt it.
  for (auto& [id, e] : evals_) {
    if (e.job_id == rt.record.id() && e.speculative && e.k == next.k && e.c == next.c) {
      e.speculative = false;
      e.target = t;
      return Apply(rt, rt.record.StartAttempt(t, e.worker_id));
    }
  }
  return Commit(rt, rt.record.CandidateEvent(index));
}

absl::Status Coordinator::FinishSearch(JobRuntime& rt) {
  const SearchOutcome outcome = rt.search->Result();
  v1::SearchResult result;
  result.set_found(outcome.found);
  result.set_k(outcome.k);
  result.set_c(outcome.c);
  result.set_validation_accuracy(outcome.accuracy);
  result.set_stop_reason(outcome.stop_reason);
  result.set_macc(outcome.figures.macc);
  result.set_flash_bytes(outcome.figures.flash_bytes);
  result.set_ram_bytes(outcome.figures.ram_bytes);
  for (const auto& cand : rt.record.job().candidates()) {
    if (outcome.found && cand.sequence() == outcome.sequence) {
      result.set_validation_accuracy(cand.best_validation_accuracy());
    }
  }
  rt.record.SetResult(result);
  const v1::JobSpec& spec = rt.record.job().spec();
  if (result.found() && !spec.final_training().skip()) {
    const v1::CandidateState fs = rt.record.StateOf(EvalTarget::Final());
    if (fs == v1::CANDIDATE_STATE_PENDING) return absl::OkStatus();  // already queued (recovery)
    if (fs != v1::CANDIDATE_STATE_UNSPECIFIED) {
      return MoveJob(rt, v1::JOB_STATE_FAILED,
                     absl::StrCat("internal: final training in state ", v1::CandidateState_Name(fs),
                                  " after the search"));
    }
    NANONAS_LOG(INFO) << "job " << rt.record.id() << " search found (" << result.k() << ","
                      << result.c() << "); final training of " << spec.final_training().epochs()
                      << " epochs queued";
    return Apply(rt, rt.record.QueueFinal(result.k(), result.c(), spec.final_training().epochs()));
  }
  if (result.found()) return EndJob(rt, "");
  return MoveJob(rt, v1::JOB_STATE_FAILED,
                 absl::StrCat("the search found no model: ", result.stop_reason(),
                              " (relax the limits (RAM, Flash, MACC, host memory), use a smaller "
                              "input, or check the failed candidates' errors)"));
}

absl::Status Coordinator::EndJob(JobRuntime& rt, const std::string& tflite) {
  std::vector<v1::Artifact> written;
  absl::Status st;
  if (deps_.artifacts != nullptr) {
    st = WriteJobArtifacts(*deps_.artifacts, rt.record.job(), tflite, v1::JOB_STATE_SUCCEEDED,
                           Now(), &written);
  }
  rt.record.SetArtifacts(written);
  if (!st.ok()) {
    return MoveJob(rt, v1::JOB_STATE_FAILED,
                   absl::StrCat("writing the artifacts: ", st.ToString()));
  }
  return MoveJob(rt, v1::JOB_STATE_SUCCEEDED, "");
}

// ---------------------------------------------------------------------------------------------
// Recovery

absl::Status Coordinator::Recover() {
  NANONAS_ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, deps_.store->LoadJobs());
  std::vector<std::pair<uint64_t, PreparationRequest>> preparations;
  absl::Status first_error;
  {
    absl::MutexLock lock(&mu_);
    int resumed = 0;
    for (v1::Job& job : jobs) {
      if (jobs_.count(job.id())) continue;
      auto events = deps_.store->LoadEvents(job.id(), 0);
      if (!events.ok()) return events.status();
      JobRuntime& rt = AddRuntime(std::move(job));
      rt.log.Load(std::move(events).value());
      if (!rt.record.job().request_id().empty()) {
        requests_[rt.record.job().request_id()] = rt.record.id();
      }
      if (IsTerminal(rt.record.state())) continue;
      if (rt.record.state() == v1::JOB_STATE_QUEUED ||
          rt.record.state() == v1::JOB_STATE_PREPARING) {
        uint64_t id = 0;
        PreparationRequest request = NewPreparation(rt, &id);
        preparations.emplace_back(id, std::move(request));
        ++resumed;
        continue;
      }
      bool ok = false;
      absl::Status st = RecoverJob(rt, &ok);
      Abort(rt, st);
      if (!st.ok() && first_error.ok()) first_error = st;
      resumed += ok ? 1 : 0;
    }
    NANONAS_LOG(INFO) << "recovered " << jobs_.size() << " jobs from the store (" << resumed
                      << " resumed, " << preparations.size() << " preparing their datasets again)";
    Dispatch();
    UpdateMetrics();
  }
  for (const auto& [id, request] : preparations) StartPreparation(id, request);
  return first_error;
}

absl::Status Coordinator::RecoverJob(JobRuntime& rt, bool* resumed) {
  // Replay the recorded path: finished candidates restore the search; the one that was on the
  // way goes back to the queue with its attempt count.
  const v1::Job& job = rt.record.job();
  std::vector<PathEntry> path;
  std::string problem;
  for (int i = 0; i < job.candidates_size(); ++i) {
    const v1::Candidate& c = job.candidates(i);
    if (IsFinal(c.state())) {
      path.push_back(EntryOf(c));
    } else if (i != job.candidates_size() - 1) {
      problem = absl::StrCat("candidate ", i, " is unfinished but not the last");
    }
  }
  if (problem.empty()) {
    auto search = NanoNasSearch::Restore(SearchOptionsOf(job), rt.feasible, path);
    if (search.ok()) {
      rt.search = std::make_unique<NanoNasSearch>(std::move(search).value());
    } else {
      problem = std::string(search.status().message());
    }
  }
  if (!problem.empty()) {
    return MoveJob(rt, v1::JOB_STATE_FAILED, absl::StrCat("cannot resume: ", problem));
  }
  const int last = rt.record.job().candidates_size() - 1;
  if (last + 1 > static_cast<int>(path.size())) {
    const EvalTarget t = EvalTarget::Candidate(last);
    if (rt.record.StateOf(t) == v1::CANDIDATE_STATE_RUNNING) {
      NANONAS_RETURN_IF_ERROR(Apply(rt, rt.record.Requeue(t, "", /*refund=*/false)));
    } else {
      NANONAS_RETURN_IF_ERROR(Commit(rt, rt.record.CandidateEvent(last)));  // still PENDING
    }
  }
  const v1::CandidateState fs = rt.record.StateOf(EvalTarget::Final());
  if (fs != v1::CANDIDATE_STATE_UNSPECIFIED && fs != v1::CANDIDATE_STATE_PENDING) {
    // The final training was on the way (or had finished without the job ending): train
    // again. The search is not re-run.
    NANONAS_RETURN_IF_ERROR(Apply(rt, rt.record.ResumeFinal()));
  }
  *resumed = true;
  NANONAS_LOG(INFO) << "job " << rt.record.id() << " resumed after " << path.size()
                    << " finished candidates";
  return StepJob(rt);
}

}  // namespace nanonas::coordinator
