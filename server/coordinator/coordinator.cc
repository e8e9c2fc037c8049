#include "server/coordinator/coordinator.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/base/units.h"
#include "common/export/c_header.h"
#include "common/export/quantize.h"
#include "common/export/report.h"
#include "google/protobuf/util/time_util.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;
using google::protobuf::util::TimeUtil;

namespace {

bool IsTerminalJob(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED ||
         s == v1::JOB_STATE_CANCELLED;
}

bool IsFinalCandidate(v1::CandidateState s) {
  return s == v1::CANDIDATE_STATE_DONE || s == v1::CANDIDATE_STATE_INFEASIBLE ||
         s == v1::CANDIDATE_STATE_HOST_INFEASIBLE || s == v1::CANDIDATE_STATE_FAILED ||
         s == v1::CANDIDATE_STATE_CANCELLED;
}

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

std::string NewJobId() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  return absl::StrFormat("job-%012x", rng() & 0xffffffffffffULL);
}

std::string FormatFigure(const std::string& resource, int64_t v) {
  if (resource == "macc") return FormatCount(v);
  return FormatBytes(v);
}

std::string DescribeViolations(const google::protobuf::RepeatedPtrField<v1::Violation>& vs) {
  std::string out;
  for (const auto& v : vs) {
    if (!out.empty()) out += "; ";
    absl::StrAppend(&out, v.resource(), " ", FormatFigure(v.resource(), v.value()),
                    " exceeds the limit ", FormatFigure(v.resource(), v.limit()), " by ",
                    FormatFigure(v.resource(), v.excess()));
  }
  return out;
}

v1::CandidateState StateOf(Outcome o) {
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

// The outcome a finished candidate reports to the search.
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

void ToProto(const Violation& v, v1::Violation* out) {
  out->set_resource(v.resource);
  out->set_value(v.value);
  out->set_limit(v.limit);
  out->set_excess(v.excess);
}

Violation FromProto(const v1::Violation& v) {
  Violation out;
  out.resource = v.resource();
  out.value = v.value();
  out.limit = v.limit();
  out.excess = v.excess();
  return out;
}

// A recorded candidate as the search's path entry (for Restore).
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
  for (const auto& v : c.violations()) e.violations.push_back(FromProto(v));
  return e;
}

}  // namespace

absl::StatusOr<v1::JobSpec> NormalizeSpec(const v1::JobSpec& in) {
  v1::JobSpec spec = in;
  if (spec.dataset_id().empty()) {
    return absl::InvalidArgumentError(
        "spec.dataset_id is empty: upload a dataset (UploadDataset) or register a server path "
        "(RegisterDatasetPath) and pass its id");
  }
  const auto& in_shape = spec.input();
  if (in_shape.height() <= 0 || in_shape.width() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.input ", in_shape.height(), "x", in_shape.width(),
        " is empty: give a positive height and width, e.g. 50x50x3"));
  }
  if (in_shape.height() > 4096 || in_shape.width() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("spec.input ", in_shape.height(), "x",
                                                   in_shape.width(),
                                                   " is too large (at most 4096x4096)"));
  }
  int channels = in_shape.channels();
  if (channels == 0) {
    channels = spec.color_mode() == v1::COLOR_MODE_GRAYSCALE ? 1 : 3;
    spec.mutable_input()->set_channels(channels);
  }
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.input.channels is ", channels, ": use 1 (grayscale) or 3 (RGB)"));
  }
  if (spec.color_mode() == v1::COLOR_MODE_UNSPECIFIED) {
    spec.set_color_mode(channels == 1 ? v1::COLOR_MODE_GRAYSCALE : v1::COLOR_MODE_RGB);
  } else if ((spec.color_mode() == v1::COLOR_MODE_GRAYSCALE) != (channels == 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.color_mode ", v1::ColorMode_Name(spec.color_mode()), " contradicts ", channels,
        " input channels"));
  }
  if (spec.validation_split() == 0) spec.set_validation_split(0.3);
  if (!(spec.validation_split() > 0 && spec.validation_split() < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.validation_split is ", spec.validation_split(),
        ": give a fraction strictly between 0 and 1 (default 0.3)"));
  }
  const auto& lim = spec.constraints();
  const std::pair<const char*, int64_t> limits[] = {{"ram_bytes", lim.ram_bytes()},
                                                    {"flash_bytes", lim.flash_bytes()},
                                                    {"macc", lim.macc()},
                                                    {"host_memory_bytes", lim.host_memory_bytes()}};
  for (const auto& [name, value] : limits) {
    if (value < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "spec.constraints.", name, " is ", value, ": limits must be positive (0 = no limit)"));
    }
  }
  if (lim.ram_bytes() == 0 && lim.flash_bytes() == 0) {
    return absl::InvalidArgumentError(
        "spec.constraints: set ram_bytes and/or flash_bytes (the microcontroller's RAM and Flash); "
        "without them every candidate fits and the search is meaningless");
  }
  std::string variant = spec.variant().empty() ? "2023" : spec.variant();
  auto parsed = ParseVariant(variant);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.variant '", spec.variant(), "' is unknown: use \"2023\" (default) or \"2024\""));
  }
  spec.set_variant(VariantName(*parsed));
  auto* ev = spec.mutable_evaluation();
  if (ev->epochs() < 0 || ev->batch_size() < 0 || ev->learning_rate() < 0) {
    return absl::InvalidArgumentError(
        "spec.evaluation: epochs, batch_size and learning_rate must not be negative");
  }
  if (ev->epochs() == 0) ev->set_epochs(3);
  if (ev->batch_size() == 0) ev->set_batch_size(16);
  if (ev->learning_rate() == 0) ev->set_learning_rate(1e-3f);
  if (ev->seed() == 0) ev->set_seed(1);
  if (ev->epochs() > 1000) {
    return absl::InvalidArgumentError("spec.evaluation.epochs is above 1000");
  }
  auto* ft = spec.mutable_final_training();
  if (ft->epochs() < 0 || ft->batch_size() < 0 || ft->learning_rate() < 0) {
    return absl::InvalidArgumentError(
        "spec.final_training: epochs, batch_size and learning_rate must not be negative");
  }
  if (ft->epochs() == 0) ft->set_epochs(100);
  if (ft->batch_size() == 0) ft->set_batch_size(128);
  if (ft->learning_rate() == 0) ft->set_learning_rate(0.01f);
  if (ft->epochs() > 10000) {
    return absl::InvalidArgumentError("spec.final_training.epochs is above 10000");
  }
  return spec;
}

std::vector<v1::Violation> FindViolations(const v1::Constraints& limits,
                                          const McuFigures& figures) {
  std::vector<v1::Violation> out;
  auto check = [&](const char* name, int64_t value, int64_t limit) {
    if (limit > 0 && value > limit) {
      v1::Violation v;
      v.set_resource(name);
      v.set_value(value);
      v.set_limit(limit);
      v.set_excess(value - limit);
      out.push_back(v);
    }
  };
  check("ram_bytes", figures.ram_bytes, limits.ram_bytes());
  check("flash_bytes", figures.flash_bytes, limits.flash_bytes());
  check("macc", figures.macc, limits.macc());
  return out;
}

Coordinator::Coordinator(CoordinatorOptions options, CoordinatorDeps deps)
    : options_(std::move(options)), deps_(std::move(deps)) {}

void Coordinator::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  for (auto& [id, handle] : handles_) handle->Cancel();
  changed_.SignalAll();
}

Coordinator::~Coordinator() {
  Shutdown();
  absl::MutexLock lock(&mu_);
  // Connector callbacks reference this object: wait (bounded) until they have all run.
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](std::map<std::string, std::unique_ptr<RunningEvaluation>>* h) {
                             return h->empty();
                           },
                           &handles_),
                       absl::Seconds(10));
}

absl::Time Coordinator::Now() const { return options_.clock ? options_.clock() : absl::Now(); }

Coordinator::JobRuntime* Coordinator::FindJob(const std::string& job_id) {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

absl::StatusOr<Architecture> Coordinator::ArchitectureOf(const v1::Job& job, int k, int c) const {
  CandidateSpec cs;
  cs.k = k;
  cs.c = c;
  cs.input.height = job.spec().input().height();
  cs.input.width = job.spec().input().width();
  cs.input.channels = job.spec().input().channels();
  cs.classes = job.num_classes();
  NANONAS_ASSIGN_OR_RETURN(cs.variant, ParseVariant(job.spec().variant()));
  return BuildArchitecture(cs);
}

absl::Status Coordinator::TransitionJob(JobRuntime& rt, v1::JobState to,
                                        const std::string& error) {
  const v1::JobState from = rt.job.state();
  const bool legal = (from == v1::JOB_STATE_QUEUED &&
                      (to == v1::JOB_STATE_RUNNING || to == v1::JOB_STATE_CANCELLED ||
                       to == v1::JOB_STATE_FAILED)) ||
                     (from == v1::JOB_STATE_RUNNING && IsTerminalJob(to));
  if (!legal) {
    return absl::FailedPreconditionError(absl::StrCat("job ", rt.job.id(), " cannot go from ",
                                                      v1::JobState_Name(from), " to ",
                                                      v1::JobState_Name(to)));
  }
  rt.job.set_state(to);
  if (!error.empty()) rt.job.set_error(error);
  if (to == v1::JOB_STATE_RUNNING) *rt.job.mutable_started() = ToProto(Now());
  if (IsTerminalJob(to)) *rt.job.mutable_finished() = ToProto(Now());
  NANONAS_LOG(INFO) << "job " << rt.job.id() << " " << v1::JobState_Name(from) << " -> "
                    << v1::JobState_Name(to) << (error.empty() ? "" : ": ") << error;
  v1::JobEvent ev;
  ev.set_job_state(to);
  Persist(rt, &ev);
  return absl::OkStatus();
}

void Coordinator::Persist(JobRuntime& rt, v1::JobEvent* event) {
  if (event != nullptr) {
    event->set_sequence(rt.last_sequence + 1);
    *event->mutable_time() = ToProto(Now());
    if (event->has_job_state()) *event->mutable_job() = rt.job;
  }
  absl::Status st = deps_.store->Commit(rt.job, event);
  if (!st.ok()) {
    // Keep serving from memory; the record on disk lags until the next successful commit.
    NANONAS_LOG(ERROR) << "store: cannot save job " << rt.job.id() << ": " << st;
  }
  if (event != nullptr) {
    rt.last_sequence = event->sequence();
    rt.events.push_back(*event);
  }
  changed_.SignalAll();
}

void Coordinator::EmitCandidate(JobRuntime& rt, int index) {
  v1::JobEvent ev;
  *ev.mutable_candidate() = rt.job.candidates(index);
  Persist(rt, &ev);
}

NanoNasSearch::Options Coordinator::SearchOptions(const v1::Job& job) const {
  NanoNasSearch::Options o;
  o.input.height = job.spec().input().height();
  o.input.width = job.spec().input().width();
  o.input.channels = job.spec().input().channels();
  o.classes = job.num_classes();
  auto variant = ParseVariant(job.spec().variant());
  o.variant = variant.ok() ? *variant : Variant::k2023;
  return o;
}

FeasibilityFunction Coordinator::MakeFeasibility(const v1::Job& job) const {
  const v1::Constraints limits = job.spec().constraints();
  const v1::EvaluationSettings settings = job.spec().evaluation();
  const auto& in = job.spec().input();
  const int64_t pixel_bytes = job.num_images() * int64_t{in.height()} * in.width() * in.channels();
  ResourceModel resources = deps_.resource_model;
  HostMemoryModel host = deps_.host_memory_model;
  return [=](const CandidateSpec& spec) -> absl::StatusOr<FeasibilityVerdict> {
    NANONAS_ASSIGN_OR_RETURN(Architecture arch, BuildArchitecture(spec));
    NANONAS_ASSIGN_OR_RETURN(McuFigures f, resources(arch));
    CandidateFigures figures;
    figures.macc = f.macc;
    figures.flash_bytes = f.flash_bytes;
    figures.ram_bytes = f.ram_bytes;
    std::vector<Violation> violations;
    for (const auto& v : FindViolations(limits, f)) violations.push_back(FromProto(v));
    if (!violations.empty()) return FeasibilityVerdict::Infeasible(violations, figures);
    if (limits.host_memory_bytes() > 0 && host) {
      const int64_t need = host(arch, pixel_bytes, settings);
      if (need > limits.host_memory_bytes()) {
        Violation v;
        v.resource = "host_memory_bytes";
        v.value = need;
        v.limit = limits.host_memory_bytes();
        v.excess = need - v.limit;
        return FeasibilityVerdict::HostInfeasible({v}, figures);
      }
    }
    return FeasibilityVerdict::Fits(figures);
  };
}

absl::StatusOr<v1::Job> Coordinator::SubmitJob(const v1::JobSpec& raw) {
  NANONAS_ASSIGN_OR_RETURN(v1::JobSpec spec, NormalizeSpec(raw));
  InputShape input;
  input.height = spec.input().height();
  input.width = spec.input().width();
  input.channels = spec.input().channels();
  // Decoding may take a while: outside the lock.
  NANONAS_ASSIGN_OR_RETURN(DecodedDataset decoded, deps_.decode(spec.dataset_id(), input));
  if (decoded.class_names.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset ", spec.dataset_id(), " has ", decoded.class_names.size(),
        " class; a classifier needs at least 2 class folders"));
  }
  v1::Job job;
  job.set_id(NewJobId());
  *job.mutable_spec() = spec;
  job.set_state(v1::JOB_STATE_QUEUED);
  *job.mutable_created() = ToProto(Now());
  job.set_num_classes(static_cast<int>(decoded.class_names.size()));
  for (const auto& c : decoded.class_names) job.add_class_names(c);
  job.set_evaluation_dataset_id(decoded.id);
  job.set_num_images(decoded.num_images);
  if (!spec.test_dataset_id().empty()) {
    absl::StatusOr<DecodedDataset> test = deps_.decode(spec.test_dataset_id(), input);
    if (!test.ok()) {
      return absl::Status(test.status().code(),
                          absl::StrCat("spec.test_dataset_id: ", test.status().message()));
    }
    if (test->class_names != decoded.class_names) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the test set's classes [", absl::StrJoin(test->class_names, ", "),
          "] differ from the training set's [", absl::StrJoin(decoded.class_names, ", "),
          "]: give the test folder the same class folders"));
    }
    job.set_test_evaluation_dataset_id(test->id);
  }
  if (!spec.final_training().skip()) {
    // The quantization calibrates on training images: refuse now rather than after the search.
    const int64_t n = decoded.num_images;
    int64_t n_val = static_cast<int64_t>(std::floor(static_cast<double>(n) *
                                                    spec.validation_split()));
    n_val = std::max<int64_t>(n_val, 1);
    if (n - n_val < kMinRepresentativeImages) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the final training's quantization calibrates on at least ", kMinRepresentativeImages,
          " training images, but dataset ", spec.dataset_id(), " leaves ", n - n_val,
          " for training (", n, " images, validation split ", spec.validation_split(),
          "): give more images, a smaller validation split, or skip the final training"));
    }
  }
  // The whole space must hold at least one candidate for this input.
  NANONAS_RETURN_IF_ERROR(ArchitectureOf(job, 1, 0).status());
  NANONAS_ASSIGN_OR_RETURN(NanoNasSearch search,
                           NanoNasSearch::Create(SearchOptions(job), MakeFeasibility(job)));

  absl::MutexLock lock(&mu_);
  // The QUEUED record must be durable before the job is acknowledged.
  {
    v1::JobEvent ev;
    ev.set_sequence(1);
    *ev.mutable_time() = ToProto(Now());
    ev.set_job_state(v1::JOB_STATE_QUEUED);
    *ev.mutable_job() = job;
    NANONAS_RETURN_IF_ERROR(deps_.store->Commit(job, &ev));
    JobRuntime& rt = jobs_[job.id()];
    rt.events.push_back(ev);
    rt.last_sequence = 1;
  }
  JobRuntime& rt = jobs_[job.id()];
  rt.job = job;
  rt.search = std::make_unique<NanoNasSearch>(std::move(search));
  job_order_.push_back(job.id());
  NANONAS_LOG(INFO) << "job " << job.id() << " submitted: dataset " << spec.dataset_id() << " ("
                    << decoded.num_images << " images, " << job.num_classes() << " classes) at "
                    << input.height << "x" << input.width << "x" << input.channels;
  (void)TransitionJob(rt, v1::JOB_STATE_RUNNING, "");
  StepJob(rt);
  Dispatch();
  UpdateMetrics();
  return rt.job;
}

void Coordinator::StepJob(JobRuntime& rt) {
  while (rt.job.state() == v1::JOB_STATE_RUNNING) {
    // Candidates the search recorded by itself (infeasible, host-infeasible, failed checks).
    const auto& path = rt.search->Path();
    for (size_t i = rt.job.candidates_size(); i < path.size(); ++i) {
      const PathEntry& e = path[i];
      v1::Candidate* cand = rt.job.add_candidates();
      cand->set_k(e.k);
      cand->set_c(e.c);
      cand->set_sequence(static_cast<int>(i));
      cand->set_state(StateOf(e.outcome));
      cand->set_macc(e.figures.macc);
      cand->set_flash_bytes(e.figures.flash_bytes);
      cand->set_ram_bytes(e.figures.ram_bytes);
      for (const auto& v : e.violations) ToProto(v, cand->add_violations());
      if (e.outcome == Outcome::kInfeasible && !e.violations.empty()) {
        cand->set_error(DescribeViolations(cand->violations()));
      } else {
        cand->set_error(e.reason);
      }
      if (deps_.metrics) deps_.metrics->CountCandidate(cand->state());
      NANONAS_LOG(INFO) << "job " << rt.job.id() << " candidate (" << e.k << "," << e.c << ") "
                        << v1::CandidateState_Name(cand->state()) << " without training: "
                        << cand->error();
      EmitCandidate(rt, static_cast<int>(i));
    }
    auto next = rt.search->Done() ? std::nullopt : rt.search->Next();
    if (!next.has_value()) {
      FinishSearch(rt);
      break;
    }
    if (rt.job.candidates_size() > static_cast<int>(path.size())) {
      // The candidate on the way is already on the job's path (queued or running).
      const v1::Candidate& last = rt.job.candidates(rt.job.candidates_size() - 1);
      if (last.k() != next->spec.k || last.c() != next->spec.c) {
        (void)TransitionJob(rt, v1::JOB_STATE_FAILED,
                            absl::StrCat("internal: queued candidate (", last.k(), ",", last.c(),
                                         ") is not the search's (", next->spec.k, ",",
                                         next->spec.c, ")"));
      }
      break;
    }
    const int index = rt.job.candidates_size();
    v1::Candidate* cand = rt.job.add_candidates();
    cand->set_k(next->spec.k);
    cand->set_c(next->spec.c);
    cand->set_sequence(next->sequence);
    cand->set_state(v1::CANDIDATE_STATE_PENDING);
    cand->set_macc(next->figures.macc);
    cand->set_flash_bytes(next->figures.flash_bytes);
    cand->set_ram_bytes(next->figures.ram_bytes);
    // Evaluated ahead of time?
    auto ahead = rt.speculative.find({next->spec.k, next->spec.c});
    if (ahead != rt.speculative.end()) {
      const JobRuntime::SpeculativeResult r = ahead->second;
      rt.speculative.erase(ahead);
      cand->set_attempts(1);
      cand->set_worker(r.worker);
      NANONAS_LOG(INFO) << "job " << rt.job.id() << " candidate (" << cand->k() << ","
                        << cand->c() << ") was evaluated ahead of time";
      ApplyResult(rt, index, r.result, r.worker, r.seconds);
      continue;
    }
    std::string running_ahead;
    for (auto& [id, e] : evals_) {
      if (e.job_id == rt.job.id() && e.index < 0 && !e.final && e.k == cand->k() &&
          e.c == cand->c()) {
        e.index = index;
        running_ahead = e.worker_id;
        break;
      }
    }
    if (!running_ahead.empty()) {
      cand->set_state(v1::CANDIDATE_STATE_RUNNING);
      cand->set_worker(running_ahead);
      cand->set_attempts(1);
    }
    EmitCandidate(rt, index);
    break;
  }
  PruneSpeculation(rt);
}

void Coordinator::PruneSpeculation(JobRuntime& rt) {
  std::vector<std::pair<int, int>> wanted;
  if (rt.job.state() == v1::JOB_STATE_RUNNING && rt.search && !rt.search->Done()) {
    wanted = rt.search->SpeculativeCandidates();
  }
  std::vector<std::string> drop;
  for (const auto& [id, e] : evals_) {
    if (e.job_id != rt.job.id() || e.index >= 0 || e.final) continue;
    if (std::find(wanted.begin(), wanted.end(), std::make_pair(e.k, e.c)) == wanted.end()) {
      drop.push_back(id);
    }
  }
  for (const auto& id : drop) CancelEvaluation(id);
}

void Coordinator::ApplyResult(JobRuntime& rt, int index, const v1::EvaluateResult& r,
                              const std::string& worker, double wall_seconds) {
  v1::Candidate* cand = rt.job.mutable_candidates(index);
  switch (r.state()) {
    case v1::CANDIDATE_STATE_DONE:
    case v1::CANDIDATE_STATE_HOST_INFEASIBLE:
    case v1::CANDIDATE_STATE_FAILED:
      cand->set_state(r.state());
      break;
    default:
      cand->set_state(v1::CANDIDATE_STATE_FAILED);
      cand->set_error(absl::StrCat("worker returned state ", v1::CandidateState_Name(r.state())));
  }
  cand->set_worker(worker);
  cand->mutable_epochs()->CopyFrom(r.epochs());
  cand->set_best_validation_accuracy(r.best_validation_accuracy());
  cand->set_peak_memory_bytes(r.peak_memory_bytes());
  cand->set_duration_seconds(r.duration_seconds() > 0 ? r.duration_seconds() : wall_seconds);
  cand->set_train_images_per_second(r.train_images_per_second());
  if (!r.error().empty()) cand->set_error(r.error());
  if (cand->state() == v1::CANDIDATE_STATE_HOST_INFEASIBLE && cand->violations_size() == 0 &&
      r.peak_memory_bytes() > 0) {
    v1::Violation* v = cand->add_violations();
    v->set_resource("host_memory_bytes");
    v->set_value(r.peak_memory_bytes());
    const int64_t limit = rt.job.spec().constraints().host_memory_bytes();
    v->set_limit(limit);
    v->set_excess(limit > 0 ? r.peak_memory_bytes() - limit : 0);
  }
  if (deps_.metrics) deps_.metrics->ObserveEvaluationSeconds(cand->duration_seconds());
  FinishCandidate(rt, index);
}

void Coordinator::FinishCandidate(JobRuntime& rt, int index) {
  const v1::Candidate& cand = rt.job.candidates(index);
  if (deps_.metrics) deps_.metrics->CountCandidate(cand.state());
  EmitCandidate(rt, index);
  NANONAS_LOG(INFO) << "job " << rt.job.id() << " candidate (" << cand.k() << "," << cand.c()
                    << ") " << v1::CandidateState_Name(cand.state())
                    << (cand.state() == v1::CANDIDATE_STATE_DONE
                            ? absl::StrFormat(" accuracy %.4f", cand.best_validation_accuracy())
                            : std::string(" ") + cand.error());
  if (cand.state() == v1::CANDIDATE_STATE_CANCELLED) return;
  absl::Status st = rt.search->Report(cand.k(), cand.c(), OutcomeOf(cand));
  if (!st.ok()) {
    (void)TransitionJob(rt, v1::JOB_STATE_FAILED, absl::StrCat("search: ", st.message()));
  }
}

void Coordinator::FinishSearch(JobRuntime& rt) {
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
  for (const auto& cand : rt.job.candidates()) {
    if (outcome.found && cand.sequence() == outcome.sequence) {
      result.set_validation_accuracy(cand.best_validation_accuracy());
    }
  }
  *rt.job.mutable_result() = result;
  if (result.found() && !rt.job.spec().final_training().skip()) {
    v1::FinalTraining* ft = rt.job.mutable_final_training();
    if (ft->state() == v1::CANDIDATE_STATE_PENDING) return;  // already queued (recovery)
    if (ft->state() != v1::CANDIDATE_STATE_UNSPECIFIED) {
      (void)TransitionJob(rt, v1::JOB_STATE_FAILED,
                          absl::StrCat("internal: final training in state ",
                                       v1::CandidateState_Name(ft->state()),
                                       " after the search"));
      return;
    }
    ft->set_state(v1::CANDIDATE_STATE_PENDING);
    ft->set_k(result.k());
    ft->set_c(result.c());
    ft->set_epochs_planned(rt.job.spec().final_training().epochs());
    NANONAS_LOG(INFO) << "job " << rt.job.id() << " search found (" << result.k() << ","
                      << result.c() << "); final training of "
                      << rt.job.spec().final_training().epochs() << " epochs queued";
    EmitFinal(rt);
    return;
  }
  if (result.found()) {
    EndJob(rt, "");
  } else {
    (void)TransitionJob(
        rt, v1::JOB_STATE_FAILED,
        absl::StrCat("the search found no model: ", result.stop_reason(),
                     " (relax the limits (RAM, Flash, MACC, host memory), use a smaller input, or "
                     "check the failed candidates' errors)"));
  }
}

void Coordinator::EmitFinal(JobRuntime& rt) {
  v1::JobEvent ev;
  *ev.mutable_final_training() = rt.job.final_training();
  Persist(rt, &ev);
}

absl::Status Coordinator::WriteArtifacts(JobRuntime& rt, const std::string& tflite,
                                         v1::JobState end) {
  if (deps_.artifacts == nullptr) return absl::OkStatus();
  std::vector<std::pair<std::string, std::string>> files;
  if (!tflite.empty()) {
    files.emplace_back("model.tflite", tflite);
    const v1::SearchResult& r = rt.job.result();
    files.emplace_back(
        "model.h",
        MakeCHeader(tflite, ModelArrayName(rt.job.spec().name(), rt.job.id()),
                    absl::StrFormat("nanonas job %s%s: NanoNAS %s model k=%d c=%d, %d classes, "
                                    "input %dx%dx%d uint8\nfull-integer uint8 TFLite model, "
                                    "%d bytes of Flash, %d bytes of RAM (reference-tool method)",
                                    rt.job.id(),
                                    rt.job.spec().name().empty()
                                        ? std::string()
                                        : absl::StrCat(" (", rt.job.spec().name(), ")"),
                                    rt.job.spec().variant(), r.k(), r.c(), rt.job.num_classes(),
                                    rt.job.spec().input().height(), rt.job.spec().input().width(),
                                    rt.job.spec().input().channels(), tflite.size(),
                                    rt.job.final_training().ram_bytes())));
  }
  for (const auto& [name, bytes] : files) {
    NANONAS_ASSIGN_OR_RETURN(v1::Artifact a, deps_.artifacts->Write(rt.job.id(), name, bytes));
    *rt.job.add_artifacts() = a;
  }
  // The report describes the job as it ends, its model artifacts included; the picture first so
  // that the report lists it too.
  v1::Job final_job = rt.job;
  final_job.set_state(end);
  *final_job.mutable_finished() = ToProto(Now());
  const std::string svg = SearchPathSvg(final_job);
  NANONAS_ASSIGN_OR_RETURN(v1::Artifact svg_artifact,
                           deps_.artifacts->Write(rt.job.id(), "search-path.svg", svg));
  *final_job.add_artifacts() = svg_artifact;
  NANONAS_ASSIGN_OR_RETURN(v1::Artifact report,
                           deps_.artifacts->Write(rt.job.id(), "report.json",
                                                  SearchReportJson(final_job)));
  *rt.job.add_artifacts() = report;
  *rt.job.add_artifacts() = svg_artifact;
  return absl::OkStatus();
}

void Coordinator::EndJob(JobRuntime& rt, const std::string& tflite) {
  rt.job.clear_artifacts();
  absl::Status st = WriteArtifacts(rt, tflite, v1::JOB_STATE_SUCCEEDED);
  if (!st.ok()) {
    (void)TransitionJob(rt, v1::JOB_STATE_FAILED,
                        absl::StrCat("writing the artifacts: ", st.ToString()));
    return;
  }
  (void)TransitionJob(rt, v1::JOB_STATE_SUCCEEDED, "");
}

v1::EvaluateRequest Coordinator::NewRequest(const JobRuntime& rt, const std::string& eval_id,
                                            int k, int c) const {
  v1::EvaluateRequest req;
  req.set_job_id(rt.job.id());
  req.set_evaluation_id(eval_id);
  req.set_dataset_id(rt.job.evaluation_dataset_id());
  *req.mutable_input() = rt.job.spec().input();
  req.set_k(k);
  req.set_c(c);
  req.set_variant(rt.job.spec().variant());
  req.set_validation_split(rt.job.spec().validation_split());
  *req.mutable_settings() = rt.job.spec().evaluation();
  req.set_host_memory_bytes(rt.job.spec().constraints().host_memory_bytes());
  return req;
}

void Coordinator::StartOnWorker(WorkerEntry* worker, const v1::EvaluateRequest& req,
                                EvalEntry entry) {
  const std::string& eval_id = req.evaluation_id();
  EvaluationCallbacks cb;
  cb.on_event = [this, eval_id](const v1::EvaluateEvent& e) { OnEvaluationEvent(eval_id, e); };
  cb.on_done = [this, eval_id](absl::StatusOr<v1::EvaluateResult> r) {
    OnEvaluationDone(eval_id, std::move(r));
  };
  handles_[eval_id] = deps_.connector->Start(worker->desc, req, std::move(cb));
  entry.job_id = req.job_id();
  entry.k = req.k();
  entry.c = req.c();
  entry.worker_id = worker->desc.id();
  entry.started = Now();
  evals_[eval_id] = std::move(entry);
  worker->running++;
  worker->last_dispatch = eval_counter_;
  if (deps_.metrics) deps_.metrics->CountDispatch();
}

void Coordinator::StartFinal(JobRuntime& rt, WorkerEntry* worker) {
  const std::string& job_id = rt.job.id();
  v1::FinalTraining* ft = rt.job.mutable_final_training();
  const std::string eval_id =
      absl::StrCat(job_id, "-final-", ft->k(), "-", ft->c(), "-", ++eval_counter_);
  v1::EvaluateRequest req = NewRequest(rt, eval_id, ft->k(), ft->c());
  req.set_final_training(true);
  *req.mutable_final_settings() = rt.job.spec().final_training();
  req.set_test_dataset_id(rt.job.test_evaluation_dataset_id());
  EvalEntry entry;
  entry.index = -1;
  entry.final = true;
  StartOnWorker(worker, req, std::move(entry));
  ft->set_state(v1::CANDIDATE_STATE_RUNNING);
  ft->set_worker(worker->desc.id());
  ft->set_attempts(ft->attempts() + 1);
  ft->clear_epochs();
  NANONAS_LOG(INFO) << "job " << job_id << " final training (" << ft->k() << "," << ft->c()
                    << ") -> worker " << worker->desc.id() << " (attempt " << ft->attempts()
                    << ")";
  EmitFinal(rt);
}

void Coordinator::ApplyFinal(JobRuntime& rt, const v1::EvaluateResult& r,
                             const std::string& worker, double wall_seconds) {
  v1::FinalTraining* ft = rt.job.mutable_final_training();
  ft->set_worker(worker);
  ft->mutable_epochs()->CopyFrom(r.epochs());
  ft->set_best_validation_accuracy(r.best_validation_accuracy());
  ft->set_best_epoch(r.best_epoch());
  ft->set_peak_memory_bytes(r.peak_memory_bytes());
  ft->set_duration_seconds(r.duration_seconds() > 0 ? r.duration_seconds() : wall_seconds);
  ft->set_quantized_validation_accuracy(r.quantized_validation_accuracy());
  ft->set_has_test_accuracy(r.has_test_accuracy());
  if (r.has_test_accuracy()) {
    ft->set_float_test_accuracy(r.float_test_accuracy());
    ft->set_quantized_test_accuracy(r.quantized_test_accuracy());
    ft->set_test_images(r.test_images());
  }
  if (deps_.metrics) deps_.metrics->ObserveEvaluationSeconds(ft->duration_seconds());
  std::string problem;
  if (r.state() != v1::CANDIDATE_STATE_DONE) {
    ft->set_state(r.state() == v1::CANDIDATE_STATE_HOST_INFEASIBLE
                      ? v1::CANDIDATE_STATE_HOST_INFEASIBLE
                      : v1::CANDIDATE_STATE_FAILED);
    problem = r.error().empty() ? absl::StrCat("worker returned state ",
                                               v1::CandidateState_Name(r.state()))
                                : r.error();
  } else if (r.tflite().empty()) {
    ft->set_state(v1::CANDIDATE_STATE_FAILED);
    problem = "the worker returned no model";
  } else if (static_cast<int64_t>(r.tflite().size()) != rt.job.result().flash_bytes()) {
    // The resource model promised the file's exact size before training: a difference is a bug.
    ft->set_state(v1::CANDIDATE_STATE_FAILED);
    problem = absl::StrCat("INTERNAL: the exported model.tflite is ", r.tflite().size(),
                           " bytes but the search's Flash figure is ",
                           rt.job.result().flash_bytes(), "; this is a bug in nanonas");
  } else {
    ft->set_state(v1::CANDIDATE_STATE_DONE);
    ft->set_flash_bytes(static_cast<int64_t>(r.tflite().size()));
    ft->set_ram_bytes(rt.job.result().ram_bytes());
  }
  if (!problem.empty()) ft->set_error(problem);
  NANONAS_LOG(INFO) << "job " << rt.job.id() << " final training "
                    << v1::CandidateState_Name(ft->state())
                    << (problem.empty()
                            ? absl::StrFormat(": validation %.4f (quantized %.4f)",
                                              ft->best_validation_accuracy(),
                                              ft->quantized_validation_accuracy())
                            : ": " + problem);
  EmitFinal(rt);
  if (!problem.empty()) {
    (void)TransitionJob(rt, v1::JOB_STATE_FAILED,
                        absl::StrCat("final training of (", ft->k(), ",", ft->c(),
                                     "): ", problem, " (the search result is kept)"));
    return;
  }
  EndJob(rt, r.tflite());
}

Coordinator::WorkerEntry* Coordinator::FreeWorker() {
  WorkerEntry* best = nullptr;
  int best_free = 0;
  const absl::Time now = Now();
  for (auto& [id, w] : workers_) {
    if (now < w.busy_until) continue;
    const int free = std::max(1, w.desc.slots()) - w.running;
    if (free > best_free ||
        (free == best_free && best != nullptr && w.last_dispatch < best->last_dispatch)) {
      best = &w;
      best_free = free;
    }
  }
  return best;
}

Coordinator::WorkerEntry* Coordinator::PreemptSpeculation() {
  for (const auto& [id, e] : evals_) {
    if (e.index >= 0 || e.final) continue;
    auto w = workers_.find(e.worker_id);
    if (w == workers_.end()) continue;
    NANONAS_LOG(INFO) << "job " << e.job_id << " speculative (" << e.k << "," << e.c
                      << ") yields worker " << e.worker_id << " to a queued candidate";
    const std::string eval_id = id;
    CancelEvaluation(eval_id);
    return &w->second;
  }
  return nullptr;
}

void Coordinator::StartEvaluation(JobRuntime& rt, int k, int c, int index, WorkerEntry* worker) {
  const std::string& job_id = rt.job.id();
  const std::string eval_id =
      absl::StrCat(job_id, "-", k, "-", c, index < 0 ? "-ahead-" : "-", ++eval_counter_);
  v1::EvaluateRequest req = NewRequest(rt, eval_id, k, c);
  req.set_test_dataset_id(rt.job.spec().test_dataset_id());
  EvalEntry entry;
  entry.index = index;
  StartOnWorker(worker, req, std::move(entry));
  if (index < 0) {
    NANONAS_LOG(INFO) << "job " << job_id << " candidate (" << k << "," << c << ") -> worker "
                      << worker->desc.id() << " ahead of time";
    return;
  }
  v1::Candidate* cand = rt.job.mutable_candidates(index);
  cand->set_state(v1::CANDIDATE_STATE_RUNNING);
  cand->set_worker(worker->desc.id());
  cand->set_attempts(cand->attempts() + 1);
  cand->clear_epochs();
  NANONAS_LOG(INFO) << "job " << job_id << " candidate (" << k << "," << c << ") -> worker "
                    << worker->desc.id() << " (attempt " << cand->attempts() << ")";
  EmitCandidate(rt, index);
}

void Coordinator::Dispatch() {
  if (shutting_down_) return;
  // Candidates the searches asked for, oldest job first.
  for (const std::string& job_id : job_order_) {
    JobRuntime& rt = jobs_[job_id];
    if (rt.job.state() != v1::JOB_STATE_RUNNING) continue;
    if (rt.job.final_training().state() == v1::CANDIDATE_STATE_PENDING) {
      WorkerEntry* worker = FreeWorker();
      if (worker == nullptr) worker = PreemptSpeculation();
      if (worker == nullptr) return;
      StartFinal(rt, worker);
      continue;
    }
    if (rt.job.candidates_size() == 0) continue;
    const int index = rt.job.candidates_size() - 1;
    const v1::Candidate& cand = rt.job.candidates(index);
    if (cand.state() != v1::CANDIDATE_STATE_PENDING) continue;
    WorkerEntry* worker = FreeWorker();
    if (worker == nullptr) worker = PreemptSpeculation();
    if (worker == nullptr) return;  // no free slot anywhere
    StartEvaluation(rt, cand.k(), cand.c(), index, worker);
  }
  if (!options_.speculate) return;
  // Idle slots: the candidates the searches will probably ask for next.
  for (const std::string& job_id : job_order_) {
    JobRuntime& rt = jobs_[job_id];
    if (rt.job.state() != v1::JOB_STATE_RUNNING || !rt.search || rt.search->Done()) continue;
    for (const auto& [k, c] : rt.search->SpeculativeCandidates()) {
      if (rt.speculative.count({k, c})) continue;
      bool running = false;
      for (const auto& [id, e] : evals_) {
        running |= e.job_id == job_id && e.k == k && e.c == c;
      }
      if (running) continue;
      WorkerEntry* worker = FreeWorker();
      if (worker == nullptr) return;
      // Only candidates that would be trained: the same feasibility the search applies.
      CandidateSpec spec;
      spec.k = k;
      spec.c = c;
      spec.input = SearchOptions(rt.job).input;
      spec.classes = rt.job.num_classes();
      spec.variant = SearchOptions(rt.job).variant;
      auto verdict = MakeFeasibility(rt.job)(spec);
      if (!verdict.ok() || verdict->fit != FeasibilityVerdict::Fit::kFits) continue;
      StartEvaluation(rt, k, c, -1, worker);
    }
  }
}

void Coordinator::OnEvaluationEvent(const std::string& eval_id, const v1::EvaluateEvent& event) {
  absl::MutexLock lock(&mu_);
  auto it = evals_.find(eval_id);
  if (it == evals_.end()) return;
  if (it->second.index < 0 && !it->second.final) return;  // speculative: not on the path yet
  JobRuntime* rt = FindJob(it->second.job_id);
  if (rt == nullptr) return;
  if (it->second.final && event.has_epoch()) {
    v1::FinalTraining* ft = rt->job.mutable_final_training();
    *ft->add_epochs() = event.epoch();
    v1::JobEvent ev;
    ev.set_sequence(rt->last_sequence);
    *ev.mutable_time() = ToProto(Now());
    auto* p = ev.mutable_progress();
    p->set_k(ft->k());
    p->set_c(ft->c());
    p->set_epoch(event.epoch().epoch());
    p->set_epochs(rt->job.spec().final_training().epochs());
    p->set_running_loss(event.epoch().train_loss());
    p->set_running_accuracy(event.epoch().train_accuracy());
    p->set_final_training(true);
    rt->progress.emplace_back(++progress_counter_, std::move(ev));
    while (rt->progress.size() > options_.progress_buffer) rt->progress.pop_front();
    changed_.SignalAll();
    return;
  }
  if (event.has_progress()) {
    v1::JobEvent ev;
    ev.set_sequence(rt->last_sequence);
    *ev.mutable_time() = ToProto(Now());
    *ev.mutable_progress() = event.progress();
    rt->progress.emplace_back(++progress_counter_, std::move(ev));
    while (rt->progress.size() > options_.progress_buffer) rt->progress.pop_front();
    changed_.SignalAll();
  } else if (event.has_epoch()) {
    *rt->job.mutable_candidates(it->second.index)->add_epochs() = event.epoch();
    // Also a live event so watchers see epoch ends promptly.
    const v1::Candidate& c = rt->job.candidates(it->second.index);
    v1::JobEvent ev;
    ev.set_sequence(rt->last_sequence);
    *ev.mutable_time() = ToProto(Now());
    auto* p = ev.mutable_progress();
    p->set_k(c.k());
    p->set_c(c.c());
    p->set_epoch(event.epoch().epoch());
    p->set_epochs(rt->job.spec().evaluation().epochs());
    p->set_running_loss(event.epoch().train_loss());
    p->set_running_accuracy(event.epoch().train_accuracy());
    rt->progress.emplace_back(++progress_counter_, std::move(ev));
    while (rt->progress.size() > options_.progress_buffer) rt->progress.pop_front();
    changed_.SignalAll();
  }
}

void Coordinator::OnEvaluationDone(const std::string& eval_id,
                                   absl::StatusOr<v1::EvaluateResult> result) {
  absl::MutexLock lock(&mu_);
  handles_.erase(eval_id);
  auto it = evals_.find(eval_id);
  if (it == evals_.end() || shutting_down_) return;  // cancelled or already re-dispatched
  const EvalEntry entry = it->second;
  JobRuntime* rt = FindJob(entry.job_id);
  if (rt == nullptr || rt->job.state() != v1::JOB_STATE_RUNNING) {
    CancelEvaluation(eval_id);
    return;
  }
  if (!result.ok() && result.status().code() == absl::StatusCode::kResourceExhausted) {
    // The worker's slots are still busy (e.g. a cancelled evaluation winding down): not a failed
    // attempt. Queue the candidate again and leave that worker alone for a moment.
    auto w = workers_.find(entry.worker_id);
    if (w != workers_.end()) w->second.busy_until = Now() + absl::Milliseconds(300);
    CancelEvaluation(eval_id);
    if (entry.final) {
      v1::FinalTraining* ft = rt->job.mutable_final_training();
      if (ft->state() == v1::CANDIDATE_STATE_RUNNING) {
        ft->set_attempts(std::max(0, ft->attempts() - 1));
        ft->set_state(v1::CANDIDATE_STATE_PENDING);
        ft->clear_worker();
        EmitFinal(*rt);
      }
    } else if (entry.index >= 0) {
      v1::Candidate* cand = rt->job.mutable_candidates(entry.index);
      if (cand->state() == v1::CANDIDATE_STATE_RUNNING) {
        cand->set_attempts(std::max(0, cand->attempts() - 1));
        cand->set_state(v1::CANDIDATE_STATE_PENDING);
        cand->clear_worker();
        EmitCandidate(*rt, entry.index);
      }
    }
    Dispatch();
    UpdateMetrics();
    return;
  }
  if (!result.ok()) {
    // Transport failure: the worker is unreachable or the stream broke.
    const std::string reason = absl::StrCat("worker ", entry.worker_id, ": ",
                                            absl::StatusCodeToString(result.status().code()), ": ",
                                            result.status().message());
    if (result.status().code() == absl::StatusCode::kUnavailable) {
      DropWorker(entry.worker_id, reason);  // also re-queues this evaluation
    } else {
      RetryOrFail(eval_id, reason);
    }
    Dispatch();
    UpdateMetrics();
    return;
  }
  const v1::EvaluateResult& r = *result;
  if (r.state() == v1::CANDIDATE_STATE_CANCELLED) {
    RetryOrFail(eval_id, absl::StrCat("worker ", entry.worker_id, " cancelled the evaluation",
                                      r.error().empty() ? "" : ": ", r.error()));
    Dispatch();
    UpdateMetrics();
    return;
  }
  CancelEvaluation(eval_id);  // bookkeeping only: the RPC has ended
  const double wall = absl::ToDoubleSeconds(Now() - entry.started);
  if (entry.final) {
    if (rt->job.final_training().state() == v1::CANDIDATE_STATE_RUNNING) {
      ApplyFinal(*rt, r, entry.worker_id, wall);
    }
  } else if (entry.index < 0) {
    // Finished ahead of time: kept until the search asks for it.
    rt->speculative[{entry.k, entry.c}] = JobRuntime::SpeculativeResult{r, entry.worker_id, wall};
  } else {
    ApplyResult(*rt, entry.index, r, entry.worker_id, wall);
    StepJob(*rt);
  }
  Dispatch();
  UpdateMetrics();
}

void Coordinator::RetryOrFail(const std::string& eval_id, const std::string& reason) {
  auto it = evals_.find(eval_id);
  if (it == evals_.end()) return;
  const EvalEntry entry = it->second;
  evals_.erase(it);
  auto w = workers_.find(entry.worker_id);
  if (w != workers_.end()) w->second.running = std::max(0, w->second.running - 1);
  if (entry.index < 0 && !entry.final) return;  // speculative: nothing waits for it
  JobRuntime* rt = FindJob(entry.job_id);
  if (rt == nullptr || rt->job.state() != v1::JOB_STATE_RUNNING) return;
  if (entry.final) {
    v1::FinalTraining* ft = rt->job.mutable_final_training();
    if (ft->state() != v1::CANDIDATE_STATE_RUNNING) return;
    NANONAS_LOG(WARNING) << "job " << entry.job_id << " final training attempt " << ft->attempts()
                         << " lost: " << reason;
    if (ft->attempts() >= options_.max_attempts) {
      ft->set_state(v1::CANDIDATE_STATE_FAILED);
      ft->set_error(absl::StrCat("final training lost ", ft->attempts(), " times (limit ",
                                 options_.max_attempts, "); last: ", reason));
      ft->set_duration_seconds(absl::ToDoubleSeconds(Now() - entry.started));
      EmitFinal(*rt);
      (void)TransitionJob(*rt, v1::JOB_STATE_FAILED,
                          absl::StrCat(ft->error(), " (the search result is kept)"));
    } else {
      ft->set_state(v1::CANDIDATE_STATE_PENDING);
      ft->set_error(absl::StrCat("retrying: ", reason));
      ft->clear_worker();
      EmitFinal(*rt);
    }
    return;
  }
  v1::Candidate* cand = rt->job.mutable_candidates(entry.index);
  if (cand->state() != v1::CANDIDATE_STATE_RUNNING) return;
  NANONAS_LOG(WARNING) << "job " << entry.job_id << " candidate (" << cand->k() << ","
                       << cand->c() << ") attempt " << cand->attempts() << " lost: " << reason;
  if (cand->attempts() >= options_.max_attempts) {
    cand->set_state(v1::CANDIDATE_STATE_FAILED);
    cand->set_error(absl::StrCat("evaluation lost ", cand->attempts(), " times (limit ",
                                 options_.max_attempts, "); last: ", reason));
    cand->set_duration_seconds(absl::ToDoubleSeconds(Now() - entry.started));
    FinishCandidate(*rt, entry.index);
    StepJob(*rt);
  } else {
    cand->set_state(v1::CANDIDATE_STATE_PENDING);
    cand->set_error(absl::StrCat("retrying: ", reason));
    cand->clear_worker();
    EmitCandidate(*rt, entry.index);
  }
}

void Coordinator::DropWorker(const std::string& worker_id, const std::string& reason) {
  auto w = workers_.find(worker_id);
  if (w != workers_.end()) {
    NANONAS_LOG(WARNING) << "worker " << worker_id << " lost: " << reason;
    workers_.erase(w);
    if (deps_.metrics) deps_.metrics->CountWorkerLoss();
  }
  std::vector<std::string> lost;
  for (const auto& [id, e] : evals_) {
    if (e.worker_id == worker_id) lost.push_back(id);
  }
  for (const auto& id : lost) {
    auto h = handles_.find(id);
    if (h != handles_.end()) h->second->Cancel();
    RetryOrFail(id, reason);
  }
}

void Coordinator::CancelEvaluation(const std::string& eval_id) {
  auto h = handles_.find(eval_id);
  if (h != handles_.end()) h->second->Cancel();
  auto it = evals_.find(eval_id);
  if (it == evals_.end()) return;
  auto w = workers_.find(it->second.worker_id);
  if (w != workers_.end()) w->second.running = std::max(0, w->second.running - 1);
  evals_.erase(it);
}

absl::StatusOr<v1::Job> Coordinator::GetJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  return rt->job;
}

absl::StatusOr<std::vector<v1::Job>> Coordinator::ListJobs(const std::vector<v1::JobState>& states,
                                                           int limit) {
  if (limit < 0) return absl::InvalidArgumentError("limit must not be negative");
  absl::MutexLock lock(&mu_);
  std::vector<v1::Job> out;
  for (auto it = job_order_.rbegin(); it != job_order_.rend(); ++it) {
    const v1::Job& job = jobs_[*it].job;
    if (!states.empty() && std::find(states.begin(), states.end(), job.state()) == states.end()) {
      continue;
    }
    out.push_back(job);
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
  }
  return out;
}

absl::StatusOr<v1::Job> Coordinator::CancelJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  if (IsTerminalJob(rt->job.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has already ended (", v1::JobState_Name(rt->job.state()), ")"));
  }
  std::vector<std::string> mine;
  for (const auto& [id, e] : evals_) {
    if (e.job_id == job_id) mine.push_back(id);
  }
  for (const auto& id : mine) CancelEvaluation(id);
  for (int i = 0; i < rt->job.candidates_size(); ++i) {
    v1::Candidate* c = rt->job.mutable_candidates(i);
    if (!IsFinalCandidate(c->state())) {
      c->set_state(v1::CANDIDATE_STATE_CANCELLED);
      c->set_error("the job was cancelled");
      FinishCandidate(*rt, i);
    }
  }
  if (rt->job.final_training().state() == v1::CANDIDATE_STATE_PENDING ||
      rt->job.final_training().state() == v1::CANDIDATE_STATE_RUNNING) {
    v1::FinalTraining* ft = rt->job.mutable_final_training();
    ft->set_state(v1::CANDIDATE_STATE_CANCELLED);
    ft->set_error("the job was cancelled");
    EmitFinal(*rt);
  }
  if (rt->search && !rt->search->Done()) rt->search->Cancel("the job was cancelled");
  NANONAS_RETURN_IF_ERROR(TransitionJob(*rt, v1::JOB_STATE_CANCELLED, ""));
  Dispatch();
  UpdateMetrics();
  return rt->job;
}

absl::StatusOr<std::vector<v1::JobEvent>> Coordinator::NextEvents(const std::string& job_id,
                                                                  WatchCursor* cursor,
                                                                  absl::Duration wait,
                                                                  bool* ended) {
  absl::MutexLock lock(&mu_);
  *ended = false;
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  std::vector<v1::JobEvent> out;
  if (!cursor->started) {
    if (cursor->sequence < 0 || cursor->sequence > rt->last_sequence) {
      return absl::OutOfRangeError(absl::StrCat("after_sequence ", cursor->sequence,
                                                " is beyond the job's last event ",
                                                rt->last_sequence));
    }
    cursor->started = true;
    if (cursor->sequence == 0) cursor->sequence = rt->last_sequence;
    v1::JobEvent snap;
    snap.set_sequence(cursor->sequence);
    *snap.mutable_time() = ToProto(Now());
    *snap.mutable_job() = rt->job;
    out.push_back(std::move(snap));
    cursor->progress = progress_counter_;
  } else {
    auto has_news = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      JobRuntime* r = FindJob(job_id);
      return shutting_down_ || r->last_sequence > cursor->sequence ||
             (!r->progress.empty() && r->progress.back().first > cursor->progress) ||
             IsTerminalJob(r->job.state());
    };
    const absl::Time deadline = absl::Now() + wait;
    while (!has_news()) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) break;
    }
    rt = FindJob(job_id);
  }
  // Persisted events after the cursor and live progress, merged in the order they happened: a
  // progress event carries the sequence of the last persisted event before it.
  std::vector<const v1::JobEvent*> live;
  for (const auto& [n, ev] : rt->progress) {
    if (n > cursor->progress) live.push_back(&ev);
  }
  size_t j = 0;
  for (const auto& ev : rt->events) {
    if (ev.sequence() <= cursor->sequence) continue;
    while (j < live.size() && live[j]->sequence() < ev.sequence()) out.push_back(*live[j++]);
    out.push_back(ev);
  }
  while (j < live.size()) out.push_back(*live[j++]);
  cursor->sequence = std::max(cursor->sequence, rt->last_sequence);
  cursor->progress = progress_counter_;
  *ended = (IsTerminalJob(rt->job.state()) && cursor->sequence >= rt->last_sequence) ||
           shutting_down_;
  return out;
}

absl::StatusOr<std::vector<v1::Artifact>> Coordinator::ListArtifacts(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  JobRuntime* rt = FindJob(job_id);
  if (rt == nullptr) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
  return std::vector<v1::Artifact>(rt->job.artifacts().begin(), rt->job.artifacts().end());
}

absl::StatusOr<std::string> Coordinator::ReadArtifact(const std::string& job_id,
                                                      const std::string& name, int64_t offset,
                                                      int64_t length) {
  {
    absl::MutexLock lock(&mu_);
    JobRuntime* rt = FindJob(job_id);
    if (rt == nullptr) return absl::NotFoundError(absl::StrCat("job '", job_id, "' not found"));
    bool listed = false;
    std::vector<std::string> names;
    for (const auto& a : rt->job.artifacts()) {
      listed |= a.name() == name;
      names.push_back(a.name());
    }
    if (!listed) {
      return absl::NotFoundError(absl::StrCat(
          "job ", job_id, " has no artifact '", name, "'",
          names.empty() ? absl::StrCat(" (it has none yet: ", v1::JobState_Name(rt->job.state()),
                                       ")")
                        : absl::StrCat("; it has: ", absl::StrJoin(names, ", "))));
    }
  }
  if (deps_.artifacts == nullptr) return absl::NotFoundError("this coordinator keeps no artifacts");
  return deps_.artifacts->Read(job_id, name, offset, length);
}

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(
    const v1::WorkerDescription& worker) {
  if (worker.id().empty()) return absl::InvalidArgumentError("worker.id is empty");
  if (worker.address().empty()) {
    return absl::InvalidArgumentError("worker.address is empty: give the host:port to dial");
  }
  if (worker.slots() < 0) return absl::InvalidArgumentError("worker.slots is negative");
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = workers_.try_emplace(worker.id());
  it->second.desc = worker;
  it->second.last_seen = Now();
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
  auto it = workers_.find(request.worker_id());
  resp.set_known(it != workers_.end());
  if (it != workers_.end()) it->second.last_seen = Now();
  return resp;
}

absl::Status Coordinator::LeaveWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  if (workers_.find(worker_id) == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker '", worker_id, "' is not registered"));
  }
  DropWorker(worker_id, "the worker left");
  Dispatch();
  UpdateMetrics();
  return absl::OkStatus();
}

void Coordinator::Tick() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = Now();
  std::vector<std::string> silent;
  for (const auto& [id, w] : workers_) {
    if (now - w.last_seen > options_.worker_timeout) silent.push_back(id);
  }
  for (const auto& id : silent) {
    DropWorker(id, absl::StrCat("no heartbeat for ",
                                absl::FormatDuration(now - workers_[id].last_seen)));
  }
  Dispatch();
  UpdateMetrics();
}

void Coordinator::UpdateMetrics() {
  if (deps_.metrics == nullptr) return;
  std::map<int, int> by_state;
  int queued = 0;
  for (const auto& [id, rt] : jobs_) {
    by_state[rt.job.state()]++;
    if (rt.job.state() == v1::JOB_STATE_RUNNING &&
        (rt.job.final_training().state() == v1::CANDIDATE_STATE_PENDING ||
         (rt.job.candidates_size() > 0 &&
          rt.job.candidates(rt.job.candidates_size() - 1).state() ==
              v1::CANDIDATE_STATE_PENDING))) {
      ++queued;
    }
  }
  for (v1::JobState s : {v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
                         v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    deps_.metrics->SetJobs(s, by_state[s]);
  }
  deps_.metrics->SetQueueDepth(queued);
  int busy = 0;
  for (const auto& [id, w] : workers_) busy += w.running > 0 ? 1 : 0;
  deps_.metrics->SetWorkers(static_cast<double>(workers_.size()), busy);
}

int Coordinator::NumWorkers() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(workers_.size());
}

int Coordinator::QueueDepth() const {
  absl::MutexLock lock(&mu_);
  int queued = 0;
  for (const auto& [id, rt] : jobs_) {
    if (rt.job.state() == v1::JOB_STATE_RUNNING &&
        (rt.job.final_training().state() == v1::CANDIDATE_STATE_PENDING ||
         (rt.job.candidates_size() > 0 &&
          rt.job.candidates(rt.job.candidates_size() - 1).state() ==
              v1::CANDIDATE_STATE_PENDING))) {
      ++queued;
    }
  }
  return queued;
}

int Coordinator::RunningEvaluations() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(evals_.size());
}

absl::Status Coordinator::Recover() {
  NANONAS_ASSIGN_OR_RETURN(std::vector<v1::Job> jobs, deps_.store->LoadJobs());
  absl::MutexLock lock(&mu_);
  int resumed = 0;
  for (v1::Job& job : jobs) {
    if (jobs_.count(job.id())) continue;
    JobRuntime& rt = jobs_[job.id()];
    job_order_.push_back(job.id());
    auto events = deps_.store->LoadEvents(job.id(), 0);
    if (!events.ok()) return events.status();
    rt.events = std::move(events).value();
    rt.last_sequence = rt.events.empty() ? 0 : rt.events.back().sequence();
    rt.job = std::move(job);
    if (IsTerminalJob(rt.job.state())) continue;
    // Replay the recorded path: finished candidates restore the search; the one that was on the
    // way goes back to the queue with its attempt count.
    std::vector<PathEntry> path;
    std::string problem;
    for (int i = 0; i < rt.job.candidates_size(); ++i) {
      v1::Candidate* c = rt.job.mutable_candidates(i);
      if (IsFinalCandidate(c->state())) {
        path.push_back(EntryOf(*c));
      } else if (i != rt.job.candidates_size() - 1) {
        problem = absl::StrCat("candidate ", i, " is unfinished but not the last");
      } else {
        c->set_state(v1::CANDIDATE_STATE_PENDING);
        c->clear_worker();
      }
    }
    if (problem.empty()) {
      auto search = NanoNasSearch::Restore(SearchOptions(rt.job), MakeFeasibility(rt.job), path);
      if (search.ok()) {
        rt.search = std::make_unique<NanoNasSearch>(std::move(search).value());
      } else {
        problem = std::string(search.status().message());
      }
    }
    if (rt.job.state() == v1::JOB_STATE_QUEUED) (void)TransitionJob(rt, v1::JOB_STATE_RUNNING, "");
    if (!problem.empty()) {
      (void)TransitionJob(rt, v1::JOB_STATE_FAILED, absl::StrCat("cannot resume: ", problem));
      continue;
    }
    if (rt.job.candidates_size() > static_cast<int>(path.size())) {
      EmitCandidate(rt, rt.job.candidates_size() - 1);  // back to PENDING
    }
    if (rt.job.final_training().state() != v1::CANDIDATE_STATE_UNSPECIFIED &&
        rt.job.final_training().state() != v1::CANDIDATE_STATE_PENDING) {
      // The final training was on the way (or had finished without the job ending): train
      // again. The search is not re-run.
      rt.job.mutable_final_training()->set_state(v1::CANDIDATE_STATE_PENDING);
      rt.job.mutable_final_training()->clear_worker();
      rt.job.mutable_final_training()->clear_epochs();
      EmitFinal(rt);
    }
    ++resumed;
    NANONAS_LOG(INFO) << "job " << rt.job.id() << " resumed after " << path.size()
                      << " finished candidates";
    StepJob(rt);
  }
  NANONAS_LOG(INFO) << "recovered " << jobs_.size() << " jobs from the store (" << resumed
                    << " resumed)";
  Dispatch();
  UpdateMetrics();
  return absl::OkStatus();
}

}  // namespace nanonas::coordinator
