#include "server/search/search.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"

namespace nanonas {
namespace {

std::string DescribeViolations(const std::vector<Violation>& violations) {
  std::vector<std::string> parts;
  for (const Violation& v : violations) {
    parts.push_back(absl::StrCat(v.resource, " ", v.value, " > limit ", v.limit, " by ", v.excess));
  }
  return absl::StrJoin(parts, ", ");
}

std::string Where(int k, int c) { return absl::StrCat("k=", k, " c=", c); }

std::string Acc(double accuracy) { return absl::StrFormat("%.4f", accuracy); }

absl::Status CheckAccuracy(double accuracy, int k, int c) {
  if (!(accuracy >= 0.0 && accuracy <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("accuracy of ", Where(k, c), " is ", accuracy, ", outside [0, 1]"));
  }
  return absl::OkStatus();
}

}  // namespace

FeasibilityVerdict FeasibilityVerdict::Fits(CandidateFigures figures) {
  FeasibilityVerdict v;
  v.fit = Fit::kFits;
  v.figures = figures;
  return v;
}

FeasibilityVerdict FeasibilityVerdict::Infeasible(std::vector<Violation> violations,
                                                  CandidateFigures figures) {
  FeasibilityVerdict v;
  v.fit = Fit::kInfeasible;
  v.violations = std::move(violations);
  v.figures = figures;
  return v;
}

FeasibilityVerdict FeasibilityVerdict::HostInfeasible(std::vector<Violation> violations,
                                                      CandidateFigures figures) {
  FeasibilityVerdict v = Infeasible(std::move(violations), figures);
  v.fit = Fit::kHostInfeasible;
  return v;
}

FeasibilityVerdict FeasibilityVerdict::FromResources(ResourceVerdict verdict) {
  switch (verdict.fit) {
    case ResourceVerdict::Fit::kFits:
      return Fits(verdict.figures);
    case ResourceVerdict::Fit::kMcuInfeasible:
      return Infeasible(std::move(verdict.violations), verdict.figures);
    case ResourceVerdict::Fit::kHostInfeasible:
      return HostInfeasible(std::move(verdict.violations), verdict.figures);
  }
  return Fits(verdict.figures);
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kDone:
      return "DONE";
    case Outcome::kInfeasible:
      return "INFEASIBLE";
    case Outcome::kHostInfeasible:
      return "HOST_INFEASIBLE";
    case Outcome::kFailed:
      return "FAILED";
    case Outcome::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

EvaluationOutcome EvaluationOutcome::Done(double accuracy) {
  EvaluationOutcome o;
  o.outcome = Outcome::kDone;
  o.accuracy = accuracy;
  return o;
}

EvaluationOutcome EvaluationOutcome::HostInfeasible(std::string reason) {
  EvaluationOutcome o;
  o.outcome = Outcome::kHostInfeasible;
  o.reason = std::move(reason);
  return o;
}

EvaluationOutcome EvaluationOutcome::Failed(std::string reason) {
  EvaluationOutcome o;
  o.outcome = Outcome::kFailed;
  o.reason = std::move(reason);
  return o;
}

EvaluationOutcome EvaluationOutcome::Cancelled(std::string reason) {
  EvaluationOutcome o;
  o.outcome = Outcome::kCancelled;
  o.reason = std::move(reason);
  return o;
}

bool PathEntry::operator==(const PathEntry& o) const {
  return sequence == o.sequence && k == o.k && c == o.c && outcome == o.outcome &&
         accuracy == o.accuracy && reason == o.reason && violations == o.violations &&
         figures == o.figures;
}

const char* NanoNasSearch::StateName(State state) {
  switch (state) {
    case State::kSelecting:
      return "SELECTING";
    case State::kEvaluating:
      return "EVALUATING";
    case State::kFinished:
      return "FINISHED";
    case State::kCancelled:
      return "CANCELLED";
  }
  return "UNKNOWN";
}

NanoNasSearch::NanoNasSearch(const Options& options, FeasibilityFunction feasibility)
    : options_(options),
      feasibility_(std::move(feasibility)),
      max_cells_(MaxCells(options.input)) {}

absl::StatusOr<NanoNasSearch> NanoNasSearch::Create(const Options& options,
                                                    FeasibilityFunction feasibility) {
  return Restore(options, std::move(feasibility), {});
}

absl::StatusOr<NanoNasSearch> NanoNasSearch::Restore(const Options& options,
                                                     FeasibilityFunction feasibility,
                                                     const std::vector<PathEntry>& path) {
  const InputShape& in = options.input;
  if (in.height < 1 || in.width < 1 || (in.channels != 1 && in.channels != 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat("search input shape ", FormatInputShape(in),
                     " is invalid: height and width must be >= 1 and channels 1 or 3"));
  }
  if (options.classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("search needs at least 2 classes, got ", options.classes));
  }
  if (options.max_k < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_k must be >= 0 (0: unbounded), got ", options.max_k));
  }
  if (options.score_decimals > 9) {
    return absl::InvalidArgumentError(
        absl::StrCat("score_decimals must be <= 9, got ", options.score_decimals));
  }
  if (!feasibility) {
    return absl::InvalidArgumentError("search needs a feasibility function");
  }
  NanoNasSearch search(options, std::move(feasibility));
  size_t pos = 0;
  NANONAS_RETURN_IF_ERROR(search.Advance(&path, &pos));
  if (pos < path.size()) {
    const PathEntry& e = path[pos];
    return absl::InvalidArgumentError(
        absl::StrCat("recorded path entry ", pos, " (", Where(e.k, e.c),
                     ") comes after the search stopped (", search.stop_reason_, ")"));
  }
  return search;
}

std::optional<PendingCandidate> NanoNasSearch::Next() const {
  if (state_ != State::kEvaluating) return std::nullopt;
  PendingCandidate p;
  p.sequence = static_cast<int>(path_.size());
  p.spec = SpecAt(k_, c_);
  p.figures = pending_figures_;
  return p;
}

absl::Status NanoNasSearch::Report(int k, int c, const EvaluationOutcome& outcome) {
  if (state_ != State::kEvaluating) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Report(", Where(k, c), "): no candidate is pending, the search is ", StateName(state_)));
  }
  if (k != k_ || c != c_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Report(", Where(k, c), "): the pending candidate is ", Where(k_, c_)));
  }
  if (outcome.outcome == Outcome::kInfeasible) {
    return absl::InvalidArgumentError(
        absl::StrCat("Report(", Where(k, c),
                     "): INFEASIBLE is decided by the feasibility function, not reported"));
  }
  if (outcome.outcome == Outcome::kDone) {
    NANONAS_RETURN_IF_ERROR(CheckAccuracy(outcome.accuracy, k, c));
  }

  PathEntry e;
  e.outcome = outcome.outcome;
  e.accuracy = outcome.outcome == Outcome::kDone ? outcome.accuracy : 0.0;
  e.reason = outcome.reason;
  e.figures = pending_figures_;
  if (outcome.outcome == Outcome::kCancelled) {
    Apply(std::move(e));
    return absl::OkStatus();
  }
  NANONAS_RETURN_IF_ERROR(TransitionState(State::kEvaluating, State::kSelecting));
  Apply(std::move(e));
  return Advance(nullptr, nullptr);
}

void NanoNasSearch::Cancel(const std::string& reason) {
  if (Done()) return;
  stop_reason_ = reason;
  TransitionState(state_, State::kCancelled).IgnoreError();  // legal from both live states
}

SearchOutcome NanoNasSearch::Result() const {
  SearchOutcome r;
  r.stop_reason = stop_reason_;
  if (state_ != State::kFinished || !prev_best_) return r;
  const PathEntry& best = path_[*prev_best_];
  r.found = true;
  r.k = best.k;
  r.c = best.c;
  r.accuracy = best.accuracy;
  r.sequence = best.sequence;
  r.figures = best.figures;
  return r;
}

std::optional<PathEntry> NanoNasSearch::BestSoFar() const {
  if (row_best_ &&
      (!prev_best_ || Score(path_[*row_best_].accuracy) > Score(path_[*prev_best_].accuracy))) {
    return path_[*row_best_];
  }
  if (prev_best_) return path_[*prev_best_];
  return std::nullopt;
}

std::vector<std::pair<int, int>> NanoNasSearch::SpeculativeCandidates() const {
  std::vector<std::pair<int, int>> out;
  if (state_ != State::kEvaluating) return out;
  if (c_ < max_cells_) out.emplace_back(k_, c_ + 1);
  if (options_.max_k == 0 || k_ < options_.max_k) out.emplace_back(k_ + 1, 0);
  return out;
}

void NanoNasSearch::Apply(PathEntry entry) {
  entry.sequence = static_cast<int>(path_.size());
  entry.k = k_;
  entry.c = c_;
  path_.push_back(std::move(entry));
  const size_t idx = path_.size() - 1;
  const PathEntry& e = path_[idx];
  switch (e.outcome) {
    case Outcome::kCancelled:
      stop_reason_ = absl::StrCat("cancelled while evaluating ", Where(k_, c_),
                                  e.reason.empty() ? "" : ": ", e.reason);
      TransitionState(state_, State::kCancelled).IgnoreError();  // legal from both live states
      return;
    case Outcome::kDone:
      if (row_best_ && Score(e.accuracy) <= Score(path_[*row_best_].accuracy)) {
        const PathEntry& prev = path_[*row_best_];
        EndRow(absl::StrCat(Where(k_, c_), " (", Acc(e.accuracy), ") did not improve on c=", prev.c,
                            " (", Acc(prev.accuracy), ")"));
        return;
      }
      row_best_ = idx;
      if (c_ >= max_cells_) {
        EndRow(absl::StrCat(Where(k_, c_), " reached the cell limit ", max_cells_, " for input ",
                            FormatInputShape(options_.input)));
        return;
      }
      ++c_;
      return;
    case Outcome::kInfeasible:
    case Outcome::kHostInfeasible:
    case Outcome::kFailed:
      EndRow(absl::StrCat(Where(k_, c_), " is ", OutcomeName(e.outcome),
                          e.reason.empty() ? "" : " (", e.reason, e.reason.empty() ? "" : ")"));
      return;
  }
}

void NanoNasSearch::EndRow(const std::string& why) {
  if (row_best_ &&
      (!prev_best_ || Score(path_[*row_best_].accuracy) > Score(path_[*prev_best_].accuracy))) {
    prev_best_ = row_best_;
    row_best_.reset();
    if (options_.max_k != 0 && k_ >= options_.max_k) {
      Finish(absl::StrCat("row k=", k_, " ended (", why, ") and max_k=", options_.max_k,
                          " forbids k=", k_ + 1));
      return;
    }
    ++k_;
    c_ = 0;
    return;
  }
  if (!prev_best_) {
    Finish(absl::StrCat("no candidate fits: ", why));
    return;
  }
  const PathEntry& prev = path_[*prev_best_];
  if (!row_best_) {
    Finish(absl::StrCat("row k=", k_, " has no trained candidate (", why, "); best is k=", prev.k,
                        " c=", prev.c, " (", Acc(prev.accuracy), ")"));
    return;
  }
  const PathEntry& row = path_[*row_best_];
  Finish(absl::StrCat("row k=", k_, " peaked at c=", row.c, " (", Acc(row.accuracy),
                      "), not better than row k=", prev.k, "'s best c=", prev.c, " (",
                      Acc(prev.accuracy), ")"));
}

void NanoNasSearch::Finish(std::string reason) {
  stop_reason_ = std::move(reason);
  TransitionState(State::kSelecting, State::kFinished).IgnoreError();  // Apply runs in kSelecting
}

absl::Status NanoNasSearch::Advance(const std::vector<PathEntry>* replay, size_t* replay_pos) {
  while (state_ == State::kSelecting) {
    if (replay != nullptr && *replay_pos < replay->size()) {
      const size_t pos = *replay_pos;
      const PathEntry& e = (*replay)[pos];
      if (e.sequence != static_cast<int>(pos) || e.k != k_ || e.c != c_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "recorded path entry ", pos, " is sequence ", e.sequence, " ", Where(e.k, e.c),
            " but the search walks to sequence ", pos, " ", Where(k_, c_), " there"));
      }
      if (e.outcome == Outcome::kCancelled && pos + 1 != replay->size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("recorded path entry ", pos, " is CANCELLED but is not the last entry"));
      }
      if (e.outcome == Outcome::kDone) NANONAS_RETURN_IF_ERROR(CheckAccuracy(e.accuracy, e.k, e.c));
      ++*replay_pos;
      Apply(e);
      continue;
    }
    absl::StatusOr<FeasibilityVerdict> verdict = feasibility_(SpecAt(k_, c_));
    if (!verdict.ok()) {
      PathEntry e;
      e.outcome = Outcome::kFailed;
      e.reason = absl::StrCat("feasibility check failed: ", verdict.status().message());
      Apply(std::move(e));
      continue;
    }
    if (verdict->fit == FeasibilityVerdict::Fit::kFits) {
      pending_figures_ = verdict->figures;
      return TransitionState(State::kSelecting, State::kEvaluating);
    }
    PathEntry e;
    e.outcome = verdict->fit == FeasibilityVerdict::Fit::kInfeasible ? Outcome::kInfeasible
                                                                     : Outcome::kHostInfeasible;
    e.reason = DescribeViolations(verdict->violations);
    e.violations = verdict->violations;
    e.figures = verdict->figures;
    Apply(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status NanoNasSearch::TransitionState(State from, State to) {
  const bool legal = state_ == from && ((from == State::kSelecting && to == State::kEvaluating) ||
                                        (from == State::kEvaluating && to == State::kSelecting) ||
                                        (from == State::kSelecting && to == State::kFinished) ||
                                        (from == State::kSelecting && to == State::kCancelled) ||
                                        (from == State::kEvaluating && to == State::kCancelled));
  if (!legal) {
    return absl::InternalError(absl::StrCat("illegal search state transition ", StateName(from),
                                            " -> ", StateName(to), " (state is ", StateName(state_),
                                            ")"));
  }
  state_ = to;
  return absl::OkStatus();
}

int64_t NanoNasSearch::Score(double accuracy) const {
  if (options_.score_decimals < 0) {
    // Unrounded: order-preserving map of [0, 1] onto integers (resolution 1e-15 is below what a
    // validation accuracy over any real dataset can distinguish).
    return static_cast<int64_t>(std::nearbyint(accuracy * 1e15));
  }
  // numpy.around: rint(x * 10^d), half to even in the default rounding mode.
  return static_cast<int64_t>(std::nearbyint(accuracy * std::pow(10.0, options_.score_decimals)));
}

CandidateSpec NanoNasSearch::SpecAt(int k, int c) const {
  CandidateSpec s;
  s.k = k;
  s.c = c;
  s.input = options_.input;
  s.classes = options_.classes;
  s.variant = options_.variant;
  return s;
}

}  // namespace nanonas
