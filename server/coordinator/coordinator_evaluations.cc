// The coordinator's evaluation life cycle (declared in coordinator.h): dispatch through the
// scheduling policy, launch, live progress, result, busy worker, retry or failure after a lost
// worker. One path serves a candidate and the final training (an EvalTarget says which).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "server/coordinator/coordinator.h"
#include "server/coordinator/job_state.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

absl::Status Coordinator::Settle(JobRuntime& rt, EvalTarget t, absl::StatusOr<v1::JobEvent> event,
                                 const std::string& tflite, const std::string& job_error) {
  NANONAS_ASSIGN_OR_RETURN(v1::JobEvent ev, std::move(event));
  if (t.is_final()) {
    const v1::CandidateState state = ev.final_training().state();
    NANONAS_RETURN_IF_ERROR(Commit(rt, std::move(ev)));
    if (state == v1::CANDIDATE_STATE_DONE) return EndJob(rt, tflite);
    if (state == v1::CANDIDATE_STATE_CANCELLED) return absl::OkStatus();
    return MoveJob(rt, v1::JOB_STATE_FAILED, job_error);
  }
  const v1::Candidate cand = ev.candidate();
  NANONAS_RETURN_IF_ERROR(Commit(rt, std::move(ev)));
  if (deps_.metrics) deps_.metrics->CountCandidate(cand.state());
  NANONAS_LOG(INFO) << "job " << rt.record.id() << " candidate (" << cand.k() << "," << cand.c()
                    << ") " << v1::CandidateState_Name(cand.state())
                    << (cand.state() == v1::CANDIDATE_STATE_DONE
                            ? absl::StrFormat(" accuracy %.4f", cand.best_validation_accuracy())
                            : std::string(" ") + cand.error());
  if (cand.state() == v1::CANDIDATE_STATE_CANCELLED) return absl::OkStatus();
  absl::Status st = rt.search->Report(cand.k(), cand.c(), OutcomeOf(cand));
  if (!st.ok()) return MoveJob(rt, v1::JOB_STATE_FAILED, absl::StrCat("search: ", st.message()));
  return absl::OkStatus();
}

absl::Status Coordinator::FinishCandidate(JobRuntime& rt, int index, const v1::EvaluateResult& r,
                                          const std::string& worker, double wall_seconds) {
  auto ev = rt.record.ApplyCandidateResult(index, r, worker, wall_seconds);
  if (ev.ok() && deps_.metrics) {
    deps_.metrics->ObserveEvaluationSeconds(ev->candidate().duration_seconds());
  }
  return Settle(rt, EvalTarget::Candidate(index), std::move(ev), "", "");
}

void Coordinator::Dispatch() {
  if (shutting_down_) return;
  for (const Assignment& a : policy_->Schedule(Snapshot())) {
    if (!a.preempt.empty()) {
      auto it = evals_.find(a.preempt);
      if (it != evals_.end()) {
        NANONAS_LOG(INFO) << "job " << it->second.job_id << " speculative (" << it->second.k << ","
                          << it->second.c << ") yields worker " << it->second.worker_id
                          << " to a queued candidate";
      }
      CancelEvaluation(a.preempt);
    }
    JobRuntime* rt = FindJob(a.work.job_id);
    if (rt == nullptr || rt->record.state() != v1::JOB_STATE_RUNNING) continue;
    Abort(*rt, Launch(*rt, a.work, a.worker_id, a.threads));
  }
}

SchedulingSnapshot Coordinator::Snapshot() {
  SchedulingSnapshot snap;
  int64_t rank = 0;
  for (const std::string& job_id : job_order_) {
    ++rank;
    const JobRecord& record = FindJob(job_id)->record;
    if (record.state() != v1::JOB_STATE_RUNNING) continue;
    const v1::Job& job = record.job();
    WorkItem w;
    w.job_id = job_id;
    w.job_rank = rank;
    if (job.final_training().state() == v1::CANDIDATE_STATE_PENDING) {
      w.kind = WorkItem::Kind::kFinal;
      w.k = job.final_training().k();
      w.c = job.final_training().c();
      snap.required.push_back(w);
    } else if (record.WaitsForWorker()) {
      w.kind = WorkItem::Kind::kCandidate;
      w.index = job.candidates_size() - 1;
      w.k = job.candidates(w.index).k();
      w.c = job.candidates(w.index).c();
      snap.required.push_back(w);
    }
  }
  snap.workers = workers_.Slots(Now());
  for (const auto& [id, e] : evals_) {
    if (e.speculative) snap.running_speculation.push_back({id, e.worker_id});
  }
  if (!options_.speculate) return snap;
  // Idle slots: the candidates the searches will probably ask for next.
  rank = 0;
  for (const std::string& job_id : job_order_) {
    ++rank;
    JobRuntime& rt = *FindJob(job_id);
    if (rt.record.state() != v1::JOB_STATE_RUNNING || !rt.search || rt.search->Done()) continue;
    for (const auto& [k, c] : rt.search->SpeculativeCandidates()) {
      if (rt.speculative.count({k, c})) continue;
      const bool running = std::any_of(evals_.begin(), evals_.end(), [&](const auto& kv) {
        return kv.second.job_id == job_id && kv.second.k == k && kv.second.c == c;
      });
      if (running || !WouldTrain(rt, k, c)) continue;
      WorkItem w;
      w.kind = WorkItem::Kind::kSpeculative;
      w.job_id = job_id;
      w.job_rank = rank;
      w.k = k;
      w.c = c;
      snap.speculative.push_back(w);
    }
  }
  return snap;
}

bool Coordinator::WouldTrain(JobRuntime& rt, int k, int c) {
  auto it = rt.fits.find({k, c});
  if (it != rt.fits.end()) return it->second;
  const NanoNasSearch::Options options = SearchOptionsOf(rt.record.job());
  CandidateSpec spec;
  spec.k = k;
  spec.c = c;
  spec.input = options.input;
  spec.classes = options.classes;
  spec.variant = options.variant;
  auto verdict = rt.feasible(spec);
  const bool fits = verdict.ok() && verdict->fit == FeasibilityVerdict::Fit::kFits;
  rt.fits[{k, c}] = fits;
  return fits;
}

absl::Status Coordinator::Launch(JobRuntime& rt, const WorkItem& work, const std::string& worker_id,
                                 int threads) {
  const v1::WorkerDescription* worker = workers_.Find(worker_id);
  if (worker == nullptr) return absl::OkStatus();
  const v1::Job& job = rt.record.job();
  const bool final = work.kind == WorkItem::Kind::kFinal;
  const bool ahead = work.kind == WorkItem::Kind::kSpeculative;
  const EvalTarget t = final ? EvalTarget::Final() : EvalTarget::Candidate(work.index);
  absl::StatusOr<v1::JobEvent> started;
  if (!ahead) {
    started = rt.record.StartAttempt(t, worker_id, threads);  // refused: nothing is sent
    NANONAS_RETURN_IF_ERROR(started.status());
  }
  const std::string eval_id =
      final ? absl::StrCat(job.id(), "-final-", work.k, "-", work.c, "-", ++eval_counter_)
            : absl::StrCat(job.id(), "-", work.k, "-", work.c, ahead ? "-ahead-" : "-",
                           ++eval_counter_);
  v1::EvaluateRequest req;
  req.set_job_id(job.id());
  req.set_evaluation_id(eval_id);
  req.set_dataset_id(job.evaluation_dataset_id());
  *req.mutable_input() = job.spec().input();
  req.set_k(work.k);
  req.set_c(work.c);
  req.set_variant(job.spec().variant());
  req.set_validation_split(job.spec().validation_split());
  *req.mutable_settings() = job.spec().evaluation();
  req.set_host_memory_bytes(job.spec().constraints().host_memory_bytes());
  req.set_threads(std::max(1, threads));
  if (final) {
    req.set_final_training(true);
    *req.mutable_final_settings() = job.spec().final_training();
    req.set_test_dataset_id(job.test_evaluation_dataset_id());
  } else {
    req.set_test_dataset_id(job.spec().test_dataset_id());
  }
  EvaluationCallbacks cb;
  cb.on_event = [this, eval_id](const v1::EvaluateEvent& e) { OnEvaluationEvent(eval_id, e); };
  cb.on_done = [this, eval_id](absl::StatusOr<v1::EvaluateResult> r) {
    OnEvaluationDone(eval_id, std::move(r));
  };
  handles_[eval_id] = deps_.connector->Start(*worker, req, std::move(cb));
  evals_[eval_id] =
      EvalEntry{job.id(), ahead, t, work.k, work.c, worker_id, Now(), std::max(1, threads)};
  workers_.Started(worker_id, eval_counter_, std::max(1, threads));
  if (deps_.metrics) deps_.metrics->CountDispatch();
  if (ahead) {
    NANONAS_LOG(INFO) << "job " << job.id() << " candidate (" << work.k << "," << work.c
                      << ") -> worker " << worker_id << " ahead of time";
    return absl::OkStatus();
  }
  NANONAS_LOG(INFO) << "job " << job.id() << " " << rt.record.Describe(t) << " -> worker "
                    << worker_id << " (attempt " << rt.record.AttemptsOf(t) << ", "
                    << std::max(1, threads) << (threads > 1 ? " threads)" : " thread)");
  return Commit(rt, *std::move(started));
}

void Coordinator::PruneSpeculation(JobRuntime& rt) {
  std::vector<std::pair<int, int>> wanted;
  if (rt.record.state() == v1::JOB_STATE_RUNNING && rt.search && !rt.search->Done()) {
    wanted = rt.search->SpeculativeCandidates();
  }
  std::vector<std::string> drop;
  for (const auto& [id, e] : evals_) {
    if (e.job_id != rt.record.id() || !e.speculative) continue;
    if (std::find(wanted.begin(), wanted.end(), std::make_pair(e.k, e.c)) == wanted.end()) {
      drop.push_back(id);
    }
  }
  for (const auto& id : drop) CancelEvaluation(id);
}

void Coordinator::OnEvaluationEvent(const std::string& eval_id, const v1::EvaluateEvent& event) {
  absl::MutexLock lock(&mu_);
  auto it = evals_.find(eval_id);
  if (it == evals_.end() || it->second.speculative) return;  // speculative: not on the path yet
  const EvalEntry& e = it->second;
  JobRuntime* rt = FindJob(e.job_id);
  if (rt == nullptr) return;
  v1::CandidateProgress progress;
  if (event.has_progress()) {
    progress = event.progress();
  } else if (event.has_epoch()) {
    // Kept with the record, and also a live event so watchers see epoch ends promptly.
    rt->record.AddEpoch(e.target, event.epoch());
    const v1::JobSpec& spec = rt->record.job().spec();
    const bool final = e.target.is_final();
    progress =
        EpochProgress(e.k, e.c, event.epoch(),
                      final ? spec.final_training().epochs() : spec.evaluation().epochs(), final);
  } else {
    return;
  }
  rt->log.AddProgress(++progress_counter_,
                      MakeProgressEvent(rt->log.last_sequence(), Now(), std::move(progress)));
  changed_.SignalAll();
}

void Coordinator::OnEvaluationDone(const std::string& eval_id,
                                   absl::StatusOr<v1::EvaluateResult> result) {
  absl::MutexLock lock(&mu_);
  handles_.erase(eval_id);
  auto it = evals_.find(eval_id);
  if (it == evals_.end() || shutting_down_) return;  // cancelled or already re-dispatched
  const EvalEntry entry = it->second;
  JobRuntime* rt = FindJob(entry.job_id);
  if (rt == nullptr || rt->record.state() != v1::JOB_STATE_RUNNING) {
    CancelEvaluation(eval_id);
    return;
  }
  absl::Status st;
  if (!result.ok() && result.status().code() == absl::StatusCode::kResourceExhausted) {
    // The worker's slots are still busy (e.g. a cancelled evaluation winding down): not a failed
    // attempt. Queue the work again and leave that worker alone for a moment.
    workers_.BusyUntil(entry.worker_id, Now() + absl::Milliseconds(300));
    st = Requeue(eval_id);
  } else if (!result.ok()) {
    // Transport failure: the worker is unreachable or the stream broke.
    const std::string reason = absl::StrCat("worker ", entry.worker_id, ": ",
                                            absl::StatusCodeToString(result.status().code()), ": ",
                                            result.status().message());
    if (result.status().code() == absl::StatusCode::kUnavailable) {
      DropWorker(entry.worker_id, reason);  // also re-queues this evaluation
    } else {
      st = RetryOrFail(eval_id, reason);
    }
  } else if (result->state() == v1::CANDIDATE_STATE_CANCELLED) {
    st = RetryOrFail(eval_id, absl::StrCat("worker ", entry.worker_id, " cancelled the evaluation",
                                           result->error().empty() ? "" : ": ", result->error()));
  } else {
    st = ApplyResult(eval_id, *result);
  }
  AbortJobOf(entry.job_id, st);
  Dispatch();
  UpdateMetrics();
}

absl::Status Coordinator::Requeue(const std::string& eval_id) {
  const EvalEntry entry = evals_.at(eval_id);
  CancelEvaluation(eval_id);
  if (entry.speculative) return absl::OkStatus();
  JobRuntime& rt = *FindJob(entry.job_id);
  if (rt.record.StateOf(entry.target) != v1::CANDIDATE_STATE_RUNNING) return absl::OkStatus();
  return Apply(rt, rt.record.Requeue(entry.target, "", /*refund=*/true));
}

absl::Status Coordinator::ApplyResult(const std::string& eval_id, const v1::EvaluateResult& r) {
  const EvalEntry entry = evals_.at(eval_id);
  CancelEvaluation(eval_id);  // bookkeeping only: the RPC has ended
  const double wall = absl::ToDoubleSeconds(Now() - entry.started);
  JobRuntime& rt = *FindJob(entry.job_id);
  if (entry.speculative) {
    // Finished ahead of time: kept until the search asks for it.
    rt.speculative[{entry.k, entry.c}] = JobRuntime::SpeculativeResult{r, entry.worker_id, wall};
    return absl::OkStatus();
  }
  if (!entry.target.is_final()) {
    NANONAS_RETURN_IF_ERROR(FinishCandidate(rt, entry.target.index, r, entry.worker_id, wall));
    return StepJob(rt);
  }
  if (rt.record.StateOf(entry.target) != v1::CANDIDATE_STATE_RUNNING) return absl::OkStatus();
  std::string problem;
  auto ev = rt.record.ApplyFinalResult(r, entry.worker_id, wall, &problem);
  NANONAS_RETURN_IF_ERROR(ev.status());
  const v1::FinalTraining& ft = ev->final_training();
  if (deps_.metrics) deps_.metrics->ObserveEvaluationSeconds(ft.duration_seconds());
  NANONAS_LOG(INFO) << "job " << rt.record.id() << " final training "
                    << v1::CandidateState_Name(ft.state())
                    << (problem.empty() ? absl::StrFormat(": validation %.4f (quantized %.4f)",
                                                          ft.best_validation_accuracy(),
                                                          ft.quantized_validation_accuracy())
                                        : ": " + problem);
  const std::string job_error = absl::StrCat("final training of (", ft.k(), ",", ft.c(),
                                             "): ", problem, " (the search result is kept)");
  return Settle(rt, entry.target, std::move(ev), r.tflite(), job_error);
}

absl::Status Coordinator::RetryOrFail(const std::string& eval_id, const std::string& reason) {
  auto it = evals_.find(eval_id);
  if (it == evals_.end()) return absl::OkStatus();
  const EvalEntry entry = it->second;
  evals_.erase(it);
  workers_.Ended(entry.worker_id, entry.threads);
  if (entry.speculative) return absl::OkStatus();  // nothing waits for it
  JobRuntime* rt = FindJob(entry.job_id);
  if (rt == nullptr || rt->record.state() != v1::JOB_STATE_RUNNING) return absl::OkStatus();
  const EvalTarget t = entry.target;
  if (rt->record.StateOf(t) != v1::CANDIDATE_STATE_RUNNING) return absl::OkStatus();
  const int attempts = rt->record.AttemptsOf(t);
  NANONAS_LOG(WARNING) << "job " << entry.job_id << " " << rt->record.Describe(t) << " attempt "
                       << attempts << " lost: " << reason;
  if (attempts < options_.max_attempts) {
    return Apply(*rt, rt->record.Requeue(t, absl::StrCat("retrying: ", reason), false));
  }
  const std::string error =
      absl::StrCat(t.is_final() ? "final training" : "evaluation", " lost ", attempts,
                   " times (limit ", options_.max_attempts, "); last: ", reason);
  const double seconds = absl::ToDoubleSeconds(Now() - entry.started);
  NANONAS_RETURN_IF_ERROR(Settle(*rt, t, rt->record.FailAttempt(t, error, seconds), "",
                                 absl::StrCat(error, " (the search result is kept)")));
  return t.is_final() ? absl::OkStatus() : StepJob(*rt);
}

void Coordinator::DropWorker(const std::string& worker_id, const std::string& reason) {
  if (workers_.Remove(worker_id)) {
    NANONAS_LOG(WARNING) << "worker " << worker_id << " lost: " << reason;
    if (deps_.metrics) deps_.metrics->CountWorkerLoss();
  }
  std::vector<std::pair<std::string, std::string>> lost;  // (evaluation, job)
  for (const auto& [id, e] : evals_) {
    if (e.worker_id == worker_id) lost.emplace_back(id, e.job_id);
  }
  for (const auto& [id, job_id] : lost) {
    auto h = handles_.find(id);
    if (h != handles_.end()) h->second->Cancel();
    AbortJobOf(job_id, RetryOrFail(id, reason));
  }
}

void Coordinator::CancelEvaluation(const std::string& eval_id) {
  auto h = handles_.find(eval_id);
  if (h != handles_.end()) h->second->Cancel();
  auto it = evals_.find(eval_id);
  if (it == evals_.end()) return;
  workers_.Ended(it->second.worker_id, it->second.threads);
  evals_.erase(it);
}

void Coordinator::CancelEvaluationsOf(const std::string& job_id) {
  std::vector<std::string> mine;
  for (const auto& [id, e] : evals_) {
    if (e.job_id == job_id) mine.push_back(id);
  }
  for (const auto& id : mine) CancelEvaluation(id);
}

void Coordinator::AbortJobOf(const std::string& job_id, const absl::Status& st) {
  if (st.ok()) return;
  JobRuntime* rt = FindJob(job_id);
  if (rt != nullptr) Abort(*rt, st);
}

}  // namespace nanonas::coordinator
