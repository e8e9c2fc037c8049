#include "server/coordinator/job_record.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/coordinator/job_state.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

bool LegalJobMove(v1::JobState from, v1::JobState to) {
  const bool ends = to == v1::JOB_STATE_CANCELLED || to == v1::JOB_STATE_FAILED;
  return (from == v1::JOB_STATE_QUEUED && (to == v1::JOB_STATE_PREPARING || ends)) ||
         (from == v1::JOB_STATE_PREPARING && (to == v1::JOB_STATE_RUNNING || ends)) ||
         (from == v1::JOB_STATE_RUNNING && IsTerminal(to));
}

// The moves a candidate and the final training share (the final training's first move,
// UNSPECIFIED -> PENDING, is QueueFinal's).
bool LegalEvaluationMove(v1::CandidateState from, v1::CandidateState to) {
  switch (from) {
    case v1::CANDIDATE_STATE_PENDING:
      return to == v1::CANDIDATE_STATE_RUNNING || to == v1::CANDIDATE_STATE_CANCELLED;
    case v1::CANDIDATE_STATE_RUNNING:
      return to == v1::CANDIDATE_STATE_PENDING || to == v1::CANDIDATE_STATE_DONE ||
             to == v1::CANDIDATE_STATE_HOST_INFEASIBLE || to == v1::CANDIDATE_STATE_FAILED ||
             to == v1::CANDIDATE_STATE_CANCELLED;
    default:
      return false;
  }
}

absl::Status Refuse(const std::string& what, const std::string& from, const std::string& to) {
  return absl::FailedPreconditionError(absl::StrCat(what, " cannot go from ", from, " to ", to));
}

absl::Status NotPreparing(const v1::Job& job, const std::string& what) {
  return absl::FailedPreconditionError(absl::StrCat(
      "job ", job.id(), " is ", v1::JobState_Name(job.state()), ", not PREPARING: cannot ", what));
}

v1::CandidateState StateOfOutcome(Outcome o) {
  switch (o) {
    case Outcome::kDone:
      return v1::CANDIDATE_STATE_DONE;
    case Outcome::kInfeasible:
      return v1::CANDIDATE_STATE_INFEASIBLE;
    case Outcome::kHostInfeasible:
      return v1::CANDIDATE_STATE_HOST_INFEASIBLE;
    case Outcome::kFailed:
      return v1::CANDIDATE_STATE_FAILED;
    case Outcome::kCancelled:
      return v1::CANDIDATE_STATE_CANCELLED;
  }
  return v1::CANDIDATE_STATE_FAILED;
}

v1::Candidate NewCandidate(const PathEntry& e) {
  v1::Candidate cand;
  cand.set_k(e.k);
  cand.set_c(e.c);
  cand.set_sequence(e.sequence);
  cand.set_macc(e.figures.macc);
  cand.set_flash_bytes(e.figures.flash_bytes);
  cand.set_ram_bytes(e.figures.ram_bytes);
  return cand;
}

// The fields a candidate and the final training share, for the shared life cycle.
template <typename T>
void StartFields(T* t, const std::string& worker) {
  t->set_worker(worker);
  t->set_attempts(t->attempts() + 1);
  t->clear_epochs();
}

template <typename T>
void RequeueFields(T* t, const std::string& error, bool refund) {
  if (refund) t->set_attempts(std::max(0, t->attempts() - 1));
  if (!error.empty()) t->set_error(error);
  t->clear_worker();
}

}  // namespace

EvaluationOutcome OutcomeOf(const v1::Candidate& c) {
  switch (c.state()) {
    case v1::CANDIDATE_STATE_DONE:
      return EvaluationOutcome::Done(c.best_validation_accuracy());
    case v1::CANDIDATE_STATE_HOST_INFEASIBLE:
      return EvaluationOutcome::HostInfeasible(c.error());
    case v1::CANDIDATE_STATE_CANCELLED:
      return EvaluationOutcome::Cancelled(c.error());
    default:
      return EvaluationOutcome::Failed(c.error());
  }
}

PathEntry EntryOf(const v1::Candidate& c) {
  PathEntry e;
  e.sequence = c.sequence();
  e.k = c.k();
  e.c = c.c();
  e.figures.macc = c.macc();
  e.figures.flash_bytes = c.flash_bytes();
  e.figures.ram_bytes = c.ram_bytes();
  if (c.state() == v1::CANDIDATE_STATE_INFEASIBLE) {
    e.outcome = Outcome::kInfeasible;
  } else {
    EvaluationOutcome o = OutcomeOf(c);
    e.outcome = o.outcome;
    e.accuracy = o.accuracy;
  }
  e.reason = c.error();
  for (const auto& v : c.violations()) {
    Violation out;
    out.resource = v.resource();
    out.value = v.value();
    out.limit = v.limit();
    out.excess = v.excess();
    e.violations.push_back(out);
  }
  return e;
}

JobRecord::JobRecord(v1::Job job) : job_(std::move(job)), durable_(job_) {}

absl::StatusOr<v1::JobEvent> JobRecord::MoveJob(v1::JobState to, const std::string& error,
                                                absl::Time now) {
  const v1::JobState from = job_.state();
  if (!LegalJobMove(from, to)) {
    return Refuse(absl::StrCat("job ", job_.id()), v1::JobState_Name(from), v1::JobState_Name(to));
  }
  job_.set_state(to);
  if (!error.empty()) job_.set_error(error);
  if (to == v1::JOB_STATE_RUNNING) *job_.mutable_started() = TimestampOf(now);
  if (IsTerminal(to)) *job_.mutable_finished() = TimestampOf(now);
  v1::JobEvent ev;
  ev.set_job_state(to);
  *ev.mutable_job() = job_;
  return ev;
}

absl::StatusOr<v1::JobEvent> JobRecord::MoveCandidate(
    int index, v1::CandidateState to, const std::function<void(v1::Candidate*)>& fill) {
  if (index < 0 || index >= job_.candidates_size()) {
    return absl::InternalError(absl::StrCat("job ", job_.id(), " has no candidate ", index));
  }
  v1::Candidate* cand = job_.mutable_candidates(index);
  if (!LegalEvaluationMove(cand->state(), to)) {
    return Refuse(absl::StrCat("job ", job_.id(), " candidate (", cand->k(), ",", cand->c(), ")"),
                  v1::CandidateState_Name(cand->state()), v1::CandidateState_Name(to));
  }
  cand->set_state(to);
  if (fill) fill(cand);
  return CandidateEvent(index);
}

absl::StatusOr<v1::JobEvent> JobRecord::MoveFinal(
    v1::CandidateState to, const std::function<void(v1::FinalTraining*)>& fill) {
  v1::FinalTraining* ft = job_.mutable_final_training();
  if (!LegalEvaluationMove(ft->state(), to)) {
    return Refuse(absl::StrCat("job ", job_.id(), " final training"),
                  v1::CandidateState_Name(ft->state()), v1::CandidateState_Name(to));
  }
  ft->set_state(to);
  if (fill) fill(ft);
  return FinalEvent();
}

int JobRecord::AddCandidate(const PathEntry& entry) {
  v1::Candidate* cand = job_.add_candidates();
  *cand = NewCandidate(entry);
  cand->set_state(v1::CANDIDATE_STATE_PENDING);
  return job_.candidates_size() - 1;
}

absl::StatusOr<v1::JobEvent> JobRecord::AddSettledCandidate(const PathEntry& e) {
  const v1::CandidateState state = StateOfOutcome(e.outcome);
  if (!IsFinal(state)) {
    return absl::InternalError(absl::StrCat("job ", job_.id(), " candidate (", e.k, ",", e.c,
                                            ") settled in state ", v1::CandidateState_Name(state)));
  }
  v1::Candidate* cand = job_.add_candidates();
  *cand = NewCandidate(e);
  cand->set_state(state);
  for (const auto& v : e.violations) {
    v1::Violation* out = cand->add_violations();
    out->set_resource(v.resource);
    out->set_value(v.value);
    out->set_limit(v.limit);
    out->set_excess(v.excess);
  }
  if (e.outcome == Outcome::kInfeasible && !e.violations.empty()) {
    cand->set_error(DescribeViolations(cand->violations()));
  } else {
    cand->set_error(e.reason);
  }
  return CandidateEvent(job_.candidates_size() - 1);
}

absl::StatusOr<v1::JobEvent> JobRecord::ApplyCandidateResult(int index, const v1::EvaluateResult& r,
                                                             const std::string& worker,
                                                             double wall_seconds) {
  v1::CandidateState to = r.state();
  const bool known = to == v1::CANDIDATE_STATE_DONE || to == v1::CANDIDATE_STATE_HOST_INFEASIBLE ||
                     to == v1::CANDIDATE_STATE_FAILED;
  if (!known) to = v1::CANDIDATE_STATE_FAILED;
  const int64_t limit = job_.spec().constraints().host_memory_bytes();
  return MoveCandidate(index, to, [&](v1::Candidate* cand) {
    if (!known) {
      cand->set_error(absl::StrCat("worker returned state ", v1::CandidateState_Name(r.state())));
    }
    cand->set_worker(worker);
    cand->mutable_epochs()->CopyFrom(r.epochs());
    cand->set_best_validation_accuracy(r.best_validation_accuracy());
    cand->set_peak_memory_bytes(r.peak_memory_bytes());
    cand->set_peak_anonymous_bytes(r.peak_anonymous_bytes());
    cand->set_duration_seconds(r.duration_seconds() > 0 ? r.duration_seconds() : wall_seconds);
    cand->set_train_images_per_second(r.train_images_per_second());
    if (!r.error().empty()) cand->set_error(r.error());
    if (to == v1::CANDIDATE_STATE_HOST_INFEASIBLE && cand->violations_size() == 0 &&
        r.peak_memory_bytes() > 0) {
      v1::Violation* v = cand->add_violations();
      v->set_resource("host_memory_bytes");
      v->set_value(r.peak_memory_bytes());
      v->set_limit(limit);
      v->set_excess(limit > 0 ? r.peak_memory_bytes() - limit : 0);
    }
  });
}

v1::JobEvent JobRecord::CandidateEvent(int index) const {
  v1::JobEvent ev;
  *ev.mutable_candidate() = job_.candidates(index);
  return ev;
}

absl::StatusOr<v1::JobEvent> JobRecord::QueueFinal(int k, int c, int epochs) {
  v1::FinalTraining* ft = job_.mutable_final_training();
  if (ft->state() != v1::CANDIDATE_STATE_UNSPECIFIED) {
    return Refuse(absl::StrCat("job ", job_.id(), " final training"),
                  v1::CandidateState_Name(ft->state()),
                  v1::CandidateState_Name(v1::CANDIDATE_STATE_PENDING));
  }
  ft->set_state(v1::CANDIDATE_STATE_PENDING);
  ft->set_k(k);
  ft->set_c(c);
  ft->set_epochs_planned(epochs);
  return FinalEvent();
}

absl::StatusOr<v1::JobEvent> JobRecord::ApplyFinalResult(const v1::EvaluateResult& r,
                                                         const std::string& worker,
                                                         double wall_seconds,
                                                         std::string* problem) {
  const v1::SearchResult& found = job_.result();
  v1::CandidateState to = v1::CANDIDATE_STATE_DONE;
  problem->clear();
  if (r.state() != v1::CANDIDATE_STATE_DONE) {
    to = r.state() == v1::CANDIDATE_STATE_HOST_INFEASIBLE ? v1::CANDIDATE_STATE_HOST_INFEASIBLE
                                                          : v1::CANDIDATE_STATE_FAILED;
    *problem = r.error().empty()
                   ? absl::StrCat("worker returned state ", v1::CandidateState_Name(r.state()))
                   : r.error();
  } else if (r.tflite().empty()) {
    to = v1::CANDIDATE_STATE_FAILED;
    *problem = "the worker returned no model";
  } else if (static_cast<int64_t>(r.tflite().size()) != found.flash_bytes()) {
    // The resource model promised the file's exact size before training: a difference is a bug.
    to = v1::CANDIDATE_STATE_FAILED;
    *problem = absl::StrCat("INTERNAL: the exported model.tflite is ", r.tflite().size(),
                            " bytes but the search's Flash figure is ", found.flash_bytes(),
                            "; this is a bug in nanonas");
  }
  return MoveFinal(to, [&](v1::FinalTraining* ft) {
    ft->set_worker(worker);
    ft->mutable_epochs()->CopyFrom(r.epochs());
    ft->set_best_validation_accuracy(r.best_validation_accuracy());
    ft->set_best_epoch(r.best_epoch());
    ft->set_peak_memory_bytes(r.peak_memory_bytes());
    ft->set_peak_anonymous_bytes(r.peak_anonymous_bytes());
    ft->set_duration_seconds(r.duration_seconds() > 0 ? r.duration_seconds() : wall_seconds);
    ft->set_quantized_validation_accuracy(r.quantized_validation_accuracy());
    ft->set_has_test_accuracy(r.has_test_accuracy());
    if (r.has_test_accuracy()) {
      ft->set_float_test_accuracy(r.float_test_accuracy());
      ft->set_quantized_test_accuracy(r.quantized_test_accuracy());
      ft->set_test_images(r.test_images());
    }
    if (to == v1::CANDIDATE_STATE_DONE) {
      ft->set_flash_bytes(static_cast<int64_t>(r.tflite().size()));
      ft->set_ram_bytes(found.ram_bytes());
    }
    if (!problem->empty()) ft->set_error(*problem);
  });
}

absl::StatusOr<v1::JobEvent> JobRecord::ResumeFinal() {
  v1::FinalTraining* ft = job_.mutable_final_training();
  if (ft->state() == v1::CANDIDATE_STATE_UNSPECIFIED ||
      ft->state() == v1::CANDIDATE_STATE_PENDING) {
    return Refuse(absl::StrCat("job ", job_.id(), " final training (resuming)"),
                  v1::CandidateState_Name(ft->state()),
                  v1::CandidateState_Name(v1::CANDIDATE_STATE_PENDING));
  }
  ft->set_state(v1::CANDIDATE_STATE_PENDING);
  ft->clear_worker();
  ft->clear_epochs();
  return FinalEvent();
}

v1::JobEvent JobRecord::FinalEvent() const {
  v1::JobEvent ev;
  *ev.mutable_final_training() = job_.final_training();
  return ev;
}

v1::CandidateState JobRecord::StateOf(EvalTarget t) const {
  if (t.is_final()) return job_.final_training().state();
  if (t.index < 0 || t.index >= job_.candidates_size()) return v1::CANDIDATE_STATE_UNSPECIFIED;
  return job_.candidates(t.index).state();
}

int JobRecord::AttemptsOf(EvalTarget t) const {
  if (t.is_final()) return job_.final_training().attempts();
  if (t.index < 0 || t.index >= job_.candidates_size()) return 0;
  return job_.candidates(t.index).attempts();
}

std::string JobRecord::Describe(EvalTarget t) const {
  if (t.is_final()) {
    return absl::StrCat("final training (", job_.final_training().k(), ",",
                        job_.final_training().c(), ")");
  }
  if (t.index < 0 || t.index >= job_.candidates_size()) return absl::StrCat("candidate ", t.index);
  const v1::Candidate& c = job_.candidates(t.index);
  return absl::StrCat("candidate (", c.k(), ",", c.c(), ")");
}

absl::StatusOr<v1::JobEvent> JobRecord::StartAttempt(EvalTarget t, const std::string& worker,
                                                     int threads) {
  if (t.is_final()) {
    return MoveFinal(v1::CANDIDATE_STATE_RUNNING, [&](v1::FinalTraining* ft) {
      StartFields(ft, worker);
      ft->set_threads(std::max(1, threads));
    });
  }
  return MoveCandidate(t.index, v1::CANDIDATE_STATE_RUNNING,
                       [&](v1::Candidate* c) { StartFields(c, worker); });
}

absl::StatusOr<v1::JobEvent> JobRecord::Requeue(EvalTarget t, const std::string& error,
                                                bool refund) {
  if (t.is_final()) {
    return MoveFinal(v1::CANDIDATE_STATE_PENDING,
                     [&](v1::FinalTraining* ft) { RequeueFields(ft, error, refund); });
  }
  return MoveCandidate(t.index, v1::CANDIDATE_STATE_PENDING,
                       [&](v1::Candidate* c) { RequeueFields(c, error, refund); });
}

absl::StatusOr<v1::JobEvent> JobRecord::FailAttempt(EvalTarget t, const std::string& error,
                                                    double seconds) {
  auto fill = [&](auto* x) {
    x->set_error(error);
    x->set_duration_seconds(seconds);
  };
  if (StateOf(t) != v1::CANDIDATE_STATE_RUNNING) {
    return Refuse(absl::StrCat("job ", job_.id(), " ", Describe(t)),
                  v1::CandidateState_Name(StateOf(t)), "FAILED (no attempt running)");
  }
  if (t.is_final()) return MoveFinal(v1::CANDIDATE_STATE_FAILED, fill);
  return MoveCandidate(t.index, v1::CANDIDATE_STATE_FAILED, fill);
}

absl::StatusOr<v1::JobEvent> JobRecord::Cancel(EvalTarget t, const std::string& reason) {
  auto fill = [&](auto* x) { x->set_error(reason); };
  if (t.is_final()) return MoveFinal(v1::CANDIDATE_STATE_CANCELLED, fill);
  return MoveCandidate(t.index, v1::CANDIDATE_STATE_CANCELLED, fill);
}

void JobRecord::AddEpoch(EvalTarget t, const v1::EpochResult& epoch) {
  if (t.is_final()) {
    *job_.mutable_final_training()->add_epochs() = epoch;
  } else if (t.index >= 0 && t.index < job_.candidates_size()) {
    *job_.mutable_candidates(t.index)->add_epochs() = epoch;
  }
}

void JobRecord::SetArtifacts(const std::vector<v1::Artifact>& artifacts) {
  job_.clear_artifacts();
  for (const auto& a : artifacts) *job_.add_artifacts() = a;
}

absl::Status JobRecord::SetPreparation(const v1::Preparation& progress) {
  if (job_.state() != v1::JOB_STATE_PREPARING) {
    return NotPreparing(job_, "set its preparation progress");
  }
  *job_.mutable_preparation() = progress;
  return absl::OkStatus();
}

absl::Status JobRecord::SetPrepared(const Prepared& prepared) {
  if (job_.state() != v1::JOB_STATE_PREPARING) {
    return NotPreparing(job_, "set its prepared dataset");
  }
  job_.set_evaluation_dataset_id(prepared.evaluation_dataset_id);
  job_.set_num_classes(static_cast<int>(prepared.class_names.size()));
  job_.clear_class_names();
  for (const auto& c : prepared.class_names) job_.add_class_names(c);
  job_.set_num_images(prepared.num_images);
  job_.set_test_evaluation_dataset_id(prepared.test_evaluation_dataset_id);
  return absl::OkStatus();
}

bool JobRecord::WaitsForWorker() const {
  if (job_.state() != v1::JOB_STATE_RUNNING) return false;
  if (job_.final_training().state() == v1::CANDIDATE_STATE_PENDING) return true;
  return job_.candidates_size() > 0 &&
         job_.candidates(job_.candidates_size() - 1).state() == v1::CANDIDATE_STATE_PENDING;
}

}  // namespace nanonas::coordinator
