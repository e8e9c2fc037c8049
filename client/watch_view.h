// What `nanonas watch` shows: frames for a terminal (pure: job + size -> lines), the in-place
// redraw of a frame over the previous one, the elapsed time and ETA, and the one-line-per-event
// log for a pipe. The functions are pure (no I/O except TerminalSize); EventLog keeps what it
// printed.
#ifndef NANONAS_CLIENT_WATCH_VIEW_H_
#define NANONAS_CLIENT_WATCH_VIEW_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

struct TerminalGeometry {
  int columns = 80;
  int lines = 24;
};

// The fraction (0..1) of a running evaluation done, from its progress.
double ProgressFraction(const nanonas::v1::CandidateProgress& progress);
// A candidate's best validation accuracy as a table shows it ("0.8123", "-" unless DONE).
std::string AccuracyText(const nanonas::v1::Candidate& candidate);
// What a table's note column says of a candidate: its error, else its violations (brief form,
// with the excess when `with_excess`), else its worker.
std::string CandidateNote(const nanonas::v1::Candidate& candidate, bool with_excess);

// stdout's size (ioctl TIOCGWINSZ), else $COLUMNS / $LINES, else 80x24.
TerminalGeometry TerminalSize();

// Columns a UTF-8 string takes (one per code point; the frames use no wide characters).
int DisplayWidth(const std::string& text);
// `text` cut to `width` columns, ending in "…" when something was cut.
std::string FitWidth(const std::string& text, int width);

// `text` broken at spaces into lines of at most `width` columns (continuations indented by 2).
std::vector<std::string> WrapWidth(const std::string& text, int width);

// Elapsed time and what is left.
struct WatchTiming {
  double elapsed_seconds = 0;
  std::optional<double> eta_seconds;  // unknown without a measured evaluation
  bool eta_at_least = false;          // the search's length is unknown: known work only
};

// The ETA from measured evaluation times: during the search, the mean duration of the finished
// candidates x the candidates still pending or running (less the running one's progress), plus
// the final training's epochs x the measured seconds per candidate epoch (a lower bound: the
// search may add candidates); during the final training, its remaining epochs x
// `final_seconds_per_epoch` (measured by the caller; <= 0: the candidates' seconds per epoch).
WatchTiming EstimateTiming(const nanonas::v1::Job& job,
                           const nanonas::v1::CandidateProgress* progress, double elapsed_seconds,
                           double final_seconds_per_epoch);

// "42s", "3m05s", "2h07m".
std::string FormatDuration(double seconds);
// "ETA —", "ETA 3m05s", "ETA ≥3m05s"; "done" once the job has ended.
std::string EtaText(const WatchTiming& timing, bool job_ended);

// "final training: RUNNING, epoch 3/20, best so far 0.9125" (no figure before the first epoch),
// or the finished / failed line with its figures. Empty when there is no final training.
// `progress` (may be null): the final training's live epoch, when it is a final-training one.
std::string FinalTrainingLine(const nanonas::v1::FinalTraining& final_training,
                              const nanonas::v1::CandidateProgress* progress);

// One terminal frame: the job line (state, elapsed, ETA), the limits, the candidate table (in
// `width` columns), the dataset preparation's progress while PREPARING, the running evaluation's
// progress, the result and the final training. With
// more rows than `height` allows, the header stays and the latest rows are shown after a
// "… N earlier" line. Table lines are cut to `width` columns ("…"), the lines under it (result,
// final training) wrapped; at most height - 1 lines.
std::vector<std::string> RenderWatchFrame(const nanonas::v1::Job& job,
                                          const nanonas::v1::CandidateProgress* progress,
                                          const WatchTiming& timing, int width, int height);

// The escape sequences that turn the screen showing `previous` (from the top-left corner) into
// `next`: each changed line is rewritten in place (cursor to its row, text, clear to end of
// line) and lines left over from a longer previous frame are cleared. No full-screen clear, so
// nothing reaches the scrollback. Empty when nothing changed.
std::string FrameUpdate(const std::vector<std::string>& previous,
                        const std::vector<std::string>& next);

// Non-terminal output (logs, pipes): one line per event. Each Update returns the lines (each
// ending in "\n") for what changed since the last call: a job state change, the dataset
// preparation's milestones (its first figure, then each further tenth done; "already prepared"),
// a candidate state change (finished ones with their accuracy, duration, elapsed time and ETA), a
// final-training state change and each final-training epoch begun. Not thread-safe.
class EventLog {
 public:
  std::string Update(const nanonas::v1::Job& job, const nanonas::v1::CandidateProgress* progress,
                     const WatchTiming& timing);

 private:
  nanonas::v1::JobState job_state_ = nanonas::v1::JOB_STATE_UNSPECIFIED;
  std::map<int, nanonas::v1::CandidateState> printed_;  // the last state printed per row
  nanonas::v1::CandidateState final_state_ = nanonas::v1::CANDIDATE_STATE_UNSPECIFIED;
  int final_epoch_ = 0;
  int preparation_decile_ = -1;  // the last tenth of the preparation printed
  bool preparation_test_set_ = false;
};

}  // namespace nanonas

#endif  // NANONAS_CLIENT_WATCH_VIEW_H_
