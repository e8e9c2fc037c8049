// The NanoNAS directional search (Algorithm 1 of Garavagno et al.) as a pure state machine: no
// gRPC, no threads, no clock. Ask it what to evaluate next, feed it the outcome, repeat.
//
// The walk, exactly as the reference implementation (NanoNAS.py, search()) behaves:
//   - start at k = 1, c = 0; a row is a fixed k with c = 0, 1, 2, ...
//   - a candidate's score is its best validation accuracy rounded to 3 decimals (numpy.around,
//     half to even), as the reference compares them; Options::score_decimals changes that;
//   - within a row, c grows while the score STRICTLY improves on the previous c of the row
//     (a tie ends the row); c = 0 of a row is always an improvement over nothing;
//   - an infeasible (MCU limits), host-infeasible or failed candidate ends its row;
//   - c never exceeds MaxCells(input); an improving candidate at c = MaxCells ends its row
//     (the reference would evaluate c + 1 and find it infeasible: same outcome, no training);
//   - when a row ends, its best is the last improving candidate; if that STRICTLY beats the
//     previous row's best, go to k + 1, c = 0; otherwise stop. A row with no successful
//     candidate never beats anything, so k = 1 with c = 0 not fitting means "no result";
//   - the result is the best row before the one that failed to improve, which is the best
//     candidate of the whole path (ties: the earlier one).
// Differences from the reference, on purpose: feasibility is decided by the injected function
// BEFORE any training (the reference trains first), and Options::max_k can bound k (0: no bound,
// as the reference).
//
// States; the legal moves (every change goes through TransitionState, which refuses others):
//   kSelecting -> kEvaluating -> kSelecting -> ... -> kFinished
//   kSelecting | kEvaluating -> kCancelled
// kSelecting is internal and transient: every public call leaves the machine in kEvaluating (one
// candidate handed out, waiting for Report), kFinished or kCancelled.
//
// Restore: Restore(options, feasibility, path) replays a recorded path (the entries of Path() of
// an earlier machine, in order) and gives a machine in the identical state, without calling the
// feasibility function for recorded candidates and without asking for any recorded evaluation
// again. The coordinator uses it to resume a job after a crash.
//
// Not thread-safe: one owner (the coordinator's job runner) calls it.
#ifndef NANONAS_SERVER_SEARCH_SEARCH_H_
#define NANONAS_SERVER_SEARCH_SEARCH_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/resources/figures.h"

namespace nanonas {

// Violation (which limit a candidate broke and by how much) comes from the resource model
// (common/resources/figures.h), as do the figures of a candidate (0 when unknown).
using CandidateFigures = McuFigures;

// What the injected feasibility function says about a candidate, before any training.
struct FeasibilityVerdict {
  enum class Fit {
    kFits,
    kInfeasible,      // breaks an MCU limit (RAM, Flash, MACC)
    kHostInfeasible,  // its training would not fit the machine running the search
  };
  Fit fit = Fit::kFits;
  std::vector<Violation> violations;  // non-empty unless kFits
  CandidateFigures figures;

  static FeasibilityVerdict Fits(CandidateFigures figures = {});
  static FeasibilityVerdict Infeasible(std::vector<Violation> violations,
                                       CandidateFigures figures = {});
  static FeasibilityVerdict HostInfeasible(std::vector<Violation> violations,
                                           CandidateFigures figures = {});
  // The resource model's verdict (common/resources) as the search's: MCU-infeasible is kInfeasible.
  static FeasibilityVerdict FromResources(ResourceVerdict verdict);
};

// Decides a candidate's feasibility. An error status is recorded as a FAILED candidate carrying
// the status message (which ends its row, like any failure).
using FeasibilityFunction =
    std::function<absl::StatusOr<FeasibilityVerdict>(const CandidateSpec& spec)>;

// How a candidate ended.
enum class Outcome {
  kDone,            // trained; accuracy is its best validation accuracy
  kInfeasible,      // recorded by the machine itself from the verdict (never Reported)
  kHostInfeasible,  // from the verdict, or Reported by the worker (training ran out of memory)
  kFailed,          // reason says why
  kCancelled,       // the job was cancelled while it ran: the search stops
};
const char* OutcomeName(Outcome outcome);  // "DONE", "INFEASIBLE", ...

// What the caller Reports for an evaluated candidate.
struct EvaluationOutcome {
  Outcome outcome = Outcome::kDone;
  double accuracy = 0;  // kDone only, in [0, 1]
  std::string reason;   // kHostInfeasible / kFailed / kCancelled: for humans

  static EvaluationOutcome Done(double accuracy);
  static EvaluationOutcome HostInfeasible(std::string reason);
  static EvaluationOutcome Failed(std::string reason);
  static EvaluationOutcome Cancelled(std::string reason = "cancelled");
};

// One candidate of the search path, in the order the search met it.
struct PathEntry {
  int sequence = 0;  // 0-based position on the path
  int k = 0;
  int c = 0;
  Outcome outcome = Outcome::kDone;
  double accuracy = 0;                // kDone only
  std::string reason;                 // failures: why; infeasible: the violations in words
  std::vector<Violation> violations;  // kInfeasible / kHostInfeasible from the verdict
  CandidateFigures figures;
  bool operator==(const PathEntry& o) const;
  bool operator!=(const PathEntry& o) const { return !(*this == o); }
};

// The candidate the caller should evaluate now.
struct PendingCandidate {
  int sequence = 0;
  CandidateSpec spec;  // k, c, input, classes, variant
  CandidateFigures figures;
};

struct SearchOutcome {
  bool found = false;  // false: nothing fitted, the search was cancelled, or it is still running
  int k = 0;
  int c = 0;
  double accuracy = 0;
  int sequence = -1;  // the result's position on the path
  CandidateFigures figures;
  std::string stop_reason;  // why the search stopped (empty while it runs)
};

class NanoNasSearch {
 public:
  enum class State { kSelecting, kEvaluating, kFinished, kCancelled };
  static const char* StateName(State state);

  struct Options {
    InputShape input;  // REQUIRES: height, width >= 1; channels 1 or 3
    int classes = 2;   // REQUIRES: >= 2
    Variant variant = Variant::k2023;
    int max_k = 0;           // 0: unbounded (the reference); otherwise stop after row max_k
    int score_decimals = 3;  // scores compare rounded to this many decimals; < 0: unrounded
  };

  // Starts a search and advances to the first candidate to train (recording infeasible ones).
  // INVALID_ARGUMENT for bad options or a null feasibility function.
  static absl::StatusOr<NanoNasSearch> Create(const Options& options,
                                              FeasibilityFunction feasibility);

  // Rebuilds the machine from a recorded path (see the header comment). Entries must be what the
  // search itself would produce, in order, with sequence 0..n-1; the last may be kCancelled.
  // INVALID_ARGUMENT naming the first entry that does not fit the walk (wrong (k, c) or
  // sequence, or entries after the search stopped).
  static absl::StatusOr<NanoNasSearch> Restore(const Options& options,
                                               FeasibilityFunction feasibility,
                                               const std::vector<PathEntry>& path);

  // The candidate to evaluate now; nullopt once Done(). Does not change the state: asking twice
  // returns the same candidate.
  std::optional<PendingCandidate> Next() const;

  // The outcome of the pending candidate (k, c). FAILED_PRECONDITION when nothing is pending;
  // INVALID_ARGUMENT for another (k, c), kInfeasible, or an accuracy outside [0, 1].
  absl::Status Report(int k, int c, const EvaluationOutcome& outcome);

  // Stops the search (the job was cancelled). No-op once Done().
  void Cancel(const std::string& reason = "cancelled");

  bool Done() const { return state_ == State::kFinished || state_ == State::kCancelled; }
  State state() const { return state_; }

  // The result once kFinished; found = false before, when cancelled, or when nothing fitted.
  SearchOutcome Result() const;
  // The best candidate met so far (the result so far), if any; also after a cancel.
  std::optional<PathEntry> BestSoFar() const;

  const std::vector<PathEntry>& Path() const { return path_; }
  const Options& options() const { return options_; }
  int max_cells() const { return max_cells_; }

  // Candidates the search may ask for after the pending one, most likely first: (k, c + 1)
  // when c < MaxCells, then (k + 1, 0) (unless max_k forbids it). For speculative evaluation:
  // the machine never needs them in advance; results must still be Reported in path order.
  std::vector<std::pair<int, int>> SpeculativeCandidates() const;

 private:
  NanoNasSearch(const Options& options, FeasibilityFunction feasibility);

  // Records `entry` for the candidate at the cursor and moves the walk on.
  void Apply(PathEntry entry);
  // Ends the current row and decides between k + 1 and stopping.
  void EndRow(const std::string& why);
  void Finish(std::string reason);
  // Consults the recorded path (replay) or the feasibility function until a candidate needs
  // training or the search stops.
  absl::Status Advance(const std::vector<PathEntry>* replay, size_t* replay_pos);
  absl::Status TransitionState(State from, State to);
  int64_t Score(double accuracy) const;
  CandidateSpec SpecAt(int k, int c) const;

  Options options_;
  FeasibilityFunction feasibility_;
  int max_cells_ = 0;
  State state_ = State::kSelecting;

  // The cursor: the candidate the walk is at.
  int k_ = 1;
  int c_ = 0;
  CandidateFigures pending_figures_;

  std::vector<PathEntry> path_;
  std::optional<size_t> row_best_;   // index into path_: last improving candidate of this row
  std::optional<size_t> prev_best_;  // index into path_: best of the rows so far
  std::string stop_reason_;
};

}  // namespace nanonas

#endif  // NANONAS_SERVER_SEARCH_SEARCH_H_
