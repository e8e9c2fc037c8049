#include "server/web/job_summary.h"

#include <algorithm>

namespace nanonas::web {

namespace v1 = nanonas::v1;

namespace {

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}
bool IsSet(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

bool IsSettled(v1::CandidateState s) {
  return s == v1::CANDIDATE_STATE_DONE || s == v1::CANDIDATE_STATE_INFEASIBLE ||
         s == v1::CANDIDATE_STATE_HOST_INFEASIBLE || s == v1::CANDIDATE_STATE_FAILED ||
         s == v1::CANDIDATE_STATE_CANCELLED;
}

bool InFinalTraining(const v1::Job& job) {
  const auto s = job.final_training().state();
  return job.state() == v1::JOB_STATE_RUNNING &&
         (s == v1::CANDIDATE_STATE_PENDING || s == v1::CANDIDATE_STATE_RUNNING);
}

// Mean seconds of the epochs (0 when none were timed).
double MeanEpochSeconds(const google::protobuf::RepeatedPtrField<v1::EpochResult>& epochs) {
  double sum = 0;
  int n = 0;
  for (const auto& e : epochs) {
    if (e.seconds() > 0) {
      sum += e.seconds();
      ++n;
    }
  }
  return n > 0 ? sum / n : 0;
}

const v1::Candidate* RunningCandidate(const v1::Job& job) {
  for (const auto& c : job.candidates()) {
    if (c.state() == v1::CANDIDATE_STATE_RUNNING) return &c;
  }
  return nullptr;
}

}  // namespace

std::string FormatTimestamp(const google::protobuf::Timestamp& t) {
  if (!IsSet(t)) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", ToTime(t), absl::UTCTimeZone());
}

int CandidatesSettled(const v1::Job& job) {
  return static_cast<int>(std::count_if(job.candidates().begin(), job.candidates().end(),
                                        [](const auto& c) { return IsSettled(c.state()); }));
}

std::optional<double> EtaSeconds(const v1::Job& job) {
  if (job.state() != v1::JOB_STATE_RUNNING) return std::nullopt;
  if (InFinalTraining(job)) {
    const v1::FinalTraining& f = job.final_training();
    const int planned =
        f.epochs_planned() > 0 ? f.epochs_planned() : job.spec().final_training().epochs();
    const double per_epoch = MeanEpochSeconds(f.epochs());
    if (f.state() != v1::CANDIDATE_STATE_RUNNING || per_epoch <= 0) return std::nullopt;
    return std::max(0, planned - f.epochs_size()) * per_epoch;
  }
  const v1::Candidate* running = RunningCandidate(job);
  if (running == nullptr) return std::nullopt;
  double per_epoch = MeanEpochSeconds(running->epochs());
  if (per_epoch <= 0) {
    double sum = 0;
    int n = 0;
    for (const auto& c : job.candidates()) {
      if (c.state() != v1::CANDIDATE_STATE_DONE) continue;
      const double mean = MeanEpochSeconds(c.epochs());
      if (mean > 0) {
        sum += mean;
        ++n;
      } else if (c.duration_seconds() > 0 && c.epochs_size() > 0) {
        sum += c.duration_seconds() / c.epochs_size();
        ++n;
      }
    }
    if (n == 0) return std::nullopt;
    per_epoch = sum / n;
  }
  return std::max(0, job.spec().evaluation().epochs() - running->epochs_size()) * per_epoch;
}

nlohmann::json PreparationSummary(const v1::Job& job) {
  if (!job.has_preparation()) return nullptr;
  const v1::Preparation& p = job.preparation();
  return {{"dataset_id", p.dataset_id()},   {"test_set", p.test_set()},
          {"images_done", p.images_done()}, {"images_total", p.images_total()},
          {"seconds", p.seconds()},         {"reused", p.reused()}};
}

double ElapsedSeconds(const v1::Job& job, absl::Time now) {
  const auto& from = IsSet(job.started()) ? job.started() : job.created();
  if (!IsSet(from)) return 0;
  const absl::Time end = IsSet(job.finished()) ? ToTime(job.finished()) : now;
  return std::max(0.0, absl::ToDoubleSeconds(end - ToTime(from)));
}

nlohmann::json JobSummary(const v1::Job& job, absl::Time now) {
  using nlohmann::json;
  const v1::Constraints& limits = job.spec().constraints();
  json out = {
      {"id", job.id()},
      {"name", job.spec().name()},
      {"dataset_id", job.spec().dataset_id()},
      {"test_dataset_id", job.spec().test_dataset_id()},
      {"target",
       {{"name", limits.target()},
        {"ram_bytes", limits.ram_bytes()},
        {"flash_bytes", limits.flash_bytes()},
        {"macc", limits.macc()},
        {"host_memory_bytes", limits.host_memory_bytes()}}},
      {"state", v1::JobState_Name(job.state())},
      {"error", job.error()},
      {"created", FormatTimestamp(job.created())},
      {"started", FormatTimestamp(job.started())},
      {"finished", FormatTimestamp(job.finished())},
      {"elapsed_seconds", ElapsedSeconds(job, now)},
  };
  const bool ended = job.state() == v1::JOB_STATE_SUCCEEDED ||
                     job.state() == v1::JOB_STATE_FAILED || job.state() == v1::JOB_STATE_CANCELLED;
  out["phase"] = ended                                    ? "ended"
                 : job.state() == v1::JOB_STATE_QUEUED    ? "queued"
                 : job.state() == v1::JOB_STATE_PREPARING ? "preparing"
                 : InFinalTraining(job)                   ? "final_training"
                                                          : "search";
  out["preparation"] = PreparationSummary(job);
  json running = nullptr;
  if (InFinalTraining(job) && job.final_training().state() == v1::CANDIDATE_STATE_RUNNING) {
    const v1::FinalTraining& f = job.final_training();
    running = {{"k", f.k()},
               {"c", f.c()},
               {"epoch", f.epochs_size()},
               {"epochs",
                f.epochs_planned() > 0 ? f.epochs_planned() : job.spec().final_training().epochs()},
               {"final_training", true}};
  } else if (const v1::Candidate* c = RunningCandidate(job); c != nullptr) {
    running = {{"k", c->k()},
               {"c", c->c()},
               {"epoch", c->epochs_size()},
               {"epochs", job.spec().evaluation().epochs()},
               {"final_training", false}};
  }
  const int evaluated = static_cast<int>(
      std::count_if(job.candidates().begin(), job.candidates().end(),
                    [](const auto& c) { return c.state() == v1::CANDIDATE_STATE_DONE; }));
  out["progress"] = {{"candidates", job.candidates_size()},
                     {"settled", CandidatesSettled(job)},
                     {"evaluated", evaluated},
                     {"running", running}};
  if (job.has_result()) {
    const v1::SearchResult& r = job.result();
    json result = {{"found", r.found()},
                   {"k", r.k()},
                   {"c", r.c()},
                   {"validation_accuracy", r.validation_accuracy()},
                   {"macc", r.macc()},
                   {"flash_bytes", r.flash_bytes()},
                   {"ram_bytes", r.ram_bytes()},
                   {"stop_reason", r.stop_reason()},
                   {"quantized_validation_accuracy", nullptr},
                   {"quantized_test_accuracy", nullptr}};
    const v1::FinalTraining& f = job.final_training();
    if (f.state() == v1::CANDIDATE_STATE_DONE) {
      result["quantized_validation_accuracy"] = f.quantized_validation_accuracy();
      if (f.has_test_accuracy()) result["quantized_test_accuracy"] = f.quantized_test_accuracy();
    }
    out["result"] = std::move(result);
  } else {
    out["result"] = nullptr;
  }
  const std::optional<double> eta = EtaSeconds(job);
  out["eta_seconds"] = eta.has_value() ? json(*eta) : json(nullptr);
  return out;
}

}  // namespace nanonas::web
