#include "client/watch_view.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/progress.h"
#include "common/api/states.h"
#include "common/api/violations.h"
#include "common/base/units.h"

namespace nanonas {
namespace v1 = nanonas::v1;

namespace {

constexpr int kDefaultCandidateEpochs = 3;
constexpr int kDefaultFinalEpochs = 100;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int n = 0;
  return v != nullptr && absl::SimpleAtoi(v, &n) && n > 0 ? n : fallback;
}

// Short state names so the table fits 80 columns.
std::string ShortState(v1::CandidateState state) {
  if (state == v1::CANDIDATE_STATE_HOST_INFEASIBLE) return "HOST_INF";
  return CandidateStateName(state);
}

std::string CandidateRow(const v1::Candidate& c, int width) {
  const std::string acc = AccuracyText(c);
  const std::string note = CandidateNote(c, /*with_excess=*/false);
  std::string row =
      absl::StrFormat("%3d %3d %2d %-10s %8s %10s %10s %6s %6s", c.sequence(), c.k(), c.c(),
                      ShortState(c.state()), c.macc() > 0 ? FormatCount(c.macc()) : "-",
                      c.flash_bytes() > 0 ? FormatBytes(c.flash_bytes()) : "-",
                      c.ram_bytes() > 0 ? FormatBytes(c.ram_bytes()) : "-", acc,
                      c.duration_seconds() > 0 ? FormatDuration(c.duration_seconds()) : "-");
  if (!note.empty()) absl::StrAppend(&row, "  ", note);
  return FitWidth(row, width);
}

}  // namespace

double ProgressFraction(const v1::CandidateProgress& p) {
  const int64_t per_epoch = std::max<int64_t>(p.batches_per_epoch(), 1);
  const int epochs = std::max(p.epochs(), 1);
  double frac = (static_cast<double>(std::max(p.epoch() - 1, 0)) * per_epoch +
                 static_cast<double>(p.batch())) /
                (static_cast<double>(epochs) * per_epoch);
  return std::clamp(frac, 0.0, 1.0);
}

std::string AccuracyText(const v1::Candidate& c) {
  return c.state() == v1::CANDIDATE_STATE_DONE
             ? absl::StrFormat("%.4f", c.best_validation_accuracy())
             : "-";
}

std::string CandidateNote(const v1::Candidate& c, bool with_excess) {
  if (!c.error().empty()) return c.error();
  if (c.violations_size() == 0) return c.worker();
  std::string note;
  for (const auto& v : c.violations()) {
    absl::StrAppend(&note, note.empty() ? "" : "; ", ViolationBrief(v, with_excess));
  }
  return note;
}

TerminalGeometry TerminalSize() {
  TerminalGeometry g;
  g.columns = EnvInt("COLUMNS", 80);
  g.lines = EnvInt("LINES", 24);
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) {
    if (ws.ws_col > 0) g.columns = ws.ws_col;
    if (ws.ws_row > 0) g.lines = ws.ws_row;
  }
  return g;
}

int DisplayWidth(const std::string& text) {
  int n = 0;
  for (unsigned char ch : text) n += (ch & 0xC0) != 0x80;  // count UTF-8 lead bytes
  return n;
}

std::string FitWidth(const std::string& text, int width) {
  if (DisplayWidth(text) <= width) return text;
  if (width <= 0) return "";
  std::string out;
  int cols = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char ch = static_cast<unsigned char>(text[i]);
    if ((ch & 0xC0) != 0x80) {
      if (cols == width - 1) break;
      ++cols;
    }
    out.push_back(text[i]);
  }
  return out + "…";
}

std::vector<std::string> WrapWidth(const std::string& text, int width) {
  std::vector<std::string> lines;
  std::string rest = text;
  width = std::max(width, 1);
  while (DisplayWidth(rest) > width) {
    size_t cut = 0;  // byte offset of the width-th column
    for (int cols = 0; cut < rest.size(); ++cut) {
      if ((static_cast<unsigned char>(rest[cut]) & 0xC0) != 0x80 && cols++ == width) break;
    }
    size_t space = rest.rfind(' ', cut);
    const bool at_space = space != std::string::npos && space > 2;  // past the indent
    lines.push_back(rest.substr(0, at_space ? space : cut));
    rest = "  " + rest.substr(at_space ? space + 1 : cut);
  }
  lines.push_back(rest);
  return lines;
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(std::llround(std::max(seconds, 0.0)));
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string EtaText(const WatchTiming& timing, bool job_ended) {
  if (job_ended) return "done";
  if (!timing.eta_seconds.has_value()) return "ETA —";
  return absl::StrCat("ETA ", timing.eta_at_least ? "≥" : "", FormatDuration(*timing.eta_seconds));
}

WatchTiming EstimateTiming(const v1::Job& job, const v1::CandidateProgress* progress,
                           double elapsed_seconds, double final_seconds_per_epoch) {
  WatchTiming t;
  t.elapsed_seconds = elapsed_seconds;
  const int spec_epochs = job.spec().evaluation().epochs() > 0 ? job.spec().evaluation().epochs()
                                                               : kDefaultCandidateEpochs;
  double done_seconds = 0, done_epochs = 0;
  int done = 0, outstanding = 0;
  for (const v1::Candidate& c : job.candidates()) {
    if (c.state() == v1::CANDIDATE_STATE_DONE && c.duration_seconds() > 0) {
      done_seconds += c.duration_seconds();
      done_epochs += c.epochs_size() > 0 ? c.epochs_size() : spec_epochs;
      ++done;
    } else if (c.state() == v1::CANDIDATE_STATE_PENDING ||
               c.state() == v1::CANDIDATE_STATE_RUNNING) {
      ++outstanding;
    }
  }
  const double per_epoch = done > 0 ? done_seconds / done_epochs : 0;
  const v1::FinalTraining& f = job.final_training();
  const int final_epochs = f.epochs_planned() > 0 ? f.epochs_planned()
                           : job.spec().final_training().epochs() > 0
                               ? job.spec().final_training().epochs()
                               : kDefaultFinalEpochs;
  const bool live_final = progress != nullptr && progress->final_training();
  if (f.state() == v1::CANDIDATE_STATE_RUNNING || f.state() == v1::CANDIDATE_STATE_PENDING) {
    const double rate = final_seconds_per_epoch > 0 ? final_seconds_per_epoch : per_epoch;
    if (rate <= 0) return t;
    double left = final_epochs;
    if (live_final) {
      left = (1.0 - ProgressFraction(*progress)) * std::max(progress->epochs(), 1);
    } else if (f.epochs_size() > 0) {
      left = std::max(final_epochs - f.epochs_size(), 0);
    }
    t.eta_seconds = left * rate;
    return t;
  }
  if (done == 0) return t;  // nothing measured yet
  double left = outstanding * (done_seconds / done);
  if (progress != nullptr && !live_final && outstanding > 0) {
    left -= ProgressFraction(*progress) * (done_seconds / done);
  }
  if (!job.spec().final_training().skip()) left += final_epochs * per_epoch;
  t.eta_seconds = std::max(left, 0.0);
  t.eta_at_least = true;  // the search may still add candidates
  return t;
}

std::string FinalTrainingLine(const v1::FinalTraining& f, const v1::CandidateProgress* progress) {
  if (f.state() == v1::CANDIDATE_STATE_UNSPECIFIED) return "";
  std::string o = absl::StrCat("final training: ", CandidateStateName(f.state()));
  if (f.state() == v1::CANDIDATE_STATE_RUNNING) {
    int epoch = f.epochs_size();
    int epochs = f.epochs_planned();
    if (progress != nullptr && progress->final_training()) {
      epoch = progress->epoch();
      epochs = progress->epochs();
    }
    if (epoch > 0) {
      absl::StrAppend(&o, ", epoch ", epoch, epochs > 0 ? absl::StrCat("/", epochs) : "");
    }
    double best = f.best_validation_accuracy();
    for (const auto& e : f.epochs()) best = std::max(best, e.validation_accuracy());
    if (f.epochs_size() > 0 || best > 0) absl::StrAppendFormat(&o, ", best so far %.4f", best);
  } else if (f.state() == v1::CANDIDATE_STATE_DONE) {
    absl::StrAppendFormat(&o, ", best validation accuracy %.4f (epoch %d of %d), uint8 %.4f",
                          f.best_validation_accuracy(), f.best_epoch(), f.epochs_size(),
                          f.quantized_validation_accuracy());
    if (f.has_test_accuracy()) {
      absl::StrAppendFormat(&o, ", test float %.4f / uint8 %.4f", f.float_test_accuracy(),
                            f.quantized_test_accuracy());
    }
  }
  if (!f.error().empty()) absl::StrAppend(&o, " (", f.error(), ")");
  return o;
}

// Long by its layout (header, table, footer), not by logic: one block per part of the frame.
std::vector<std::string> RenderWatchFrame(const v1::Job& job, const v1::CandidateProgress* progress,
                                          const WatchTiming& timing, int width, int height) {
  width = std::max(width, 20);
  height = std::max(height, 8);
  const bool ended = IsTerminal(job.state());
  const auto& spec = job.spec();
  const auto& lim = spec.constraints();
  std::vector<std::string> head, foot;
  head.push_back(absl::StrCat("job ", job.id(), "  ", JobStateName(job.state()), "  elapsed ",
                              FormatDuration(timing.elapsed_seconds), "  ",
                              EtaText(timing, ended)));
  std::string limits =
      absl::StrCat(spec.name().empty() ? "" : absl::StrCat("  \"", spec.name(), "\""), "  input ",
                   spec.input().height(), "x", spec.input().width(), "x", spec.input().channels(),
                   ", limits: RAM ", lim.ram_bytes() > 0 ? FormatBytes(lim.ram_bytes()) : "-",
                   ", Flash ", lim.flash_bytes() > 0 ? FormatBytes(lim.flash_bytes()) : "-",
                   ", MACC ", lim.macc() > 0 ? FormatCount(lim.macc()) : "-");
  if (!lim.target().empty()) absl::StrAppend(&limits, " (", lim.target(), ")");
  head.push_back(limits);
  head.push_back(absl::StrFormat("%3s %3s %2s %-10s %8s %10s %10s %6s %6s  %s", "#", "k", "c",
                                 "state", "MACC", "Flash", "RAM", "acc", "time", "worker/note"));
  if (job.state() == v1::JOB_STATE_PREPARING && job.has_preparation()) {
    foot.push_back("  " + FormatPreparation(job.preparation(), ""));
  }
  if (progress != nullptr && !ended) {
    absl::StrAppendFormat(&foot.emplace_back(),
                          "  %s k=%d c=%d  epoch %d/%d  %s  loss %.4f  acc %.4f",
                          progress->final_training() ? "final training" : "training", progress->k(),
                          progress->c(), progress->epoch(), std::max(progress->epochs(), 1),
                          ProgressBar(ProgressFraction(*progress), 16), progress->running_loss(),
                          progress->running_accuracy());
  }
  const auto& r = job.result();
  if (r.found()) {
    foot.push_back(absl::StrFormat("result: k=%d c=%d, validation accuracy %.4f, MACC %s", r.k(),
                                   r.c(), r.validation_accuracy(),
                                   r.macc() > 0 ? FormatCount(r.macc()) : "-"));
  } else if (ended && job.state() == v1::JOB_STATE_SUCCEEDED) {
    foot.push_back("result: no candidate fits the limits");
  }
  if (!r.stop_reason().empty()) foot.push_back("stopped: " + r.stop_reason());
  std::string final_line = FinalTrainingLine(job.final_training(), progress);
  if (!final_line.empty()) foot.push_back(final_line);
  if (!job.error().empty()) foot.push_back("error: " + job.error());

  // Rows that fit: at most height - 1 lines in all (the cursor's line stays free: no scrolling).
  const int rows = job.candidates_size();
  int foot_lines = foot.empty() ? 0 : 1;  // a blank line, then each line wrapped to the width
  for (const auto& f : foot) foot_lines += static_cast<int>(WrapWidth(f, width).size());
  int room = height - 1 - static_cast<int>(head.size()) - foot_lines;
  room = std::max(room, 1);
  std::vector<std::string> lines;
  for (const auto& h : head) lines.push_back(FitWidth(h, width));
  int first = 0;
  if (rows > room) {
    first = rows - (room - 1);
    lines.push_back(FitWidth(absl::StrCat("  … ", first, " earlier"), width));
  }
  for (int i = first; i < rows; ++i) lines.push_back(CandidateRow(job.candidates(i), width));
  if (!foot.empty()) lines.push_back("");
  for (const auto& f : foot) {
    for (std::string& part : WrapWidth(f, width)) lines.push_back(std::move(part));
  }
  if (static_cast<int>(lines.size()) > height - 1) lines.resize(std::max(height - 1, 1));
  return lines;
}

std::string FrameUpdate(const std::vector<std::string>& previous,
                        const std::vector<std::string>& next) {
  std::string o;
  for (size_t i = 0; i < next.size(); ++i) {
    if (i < previous.size() && previous[i] == next[i]) continue;
    absl::StrAppend(&o, "\033[", i + 1, ";1H", next[i], "\033[K");
  }
  if (previous.size() > next.size()) absl::StrAppend(&o, "\033[", next.size() + 1, ";1H\033[J");
  if (!o.empty()) absl::StrAppend(&o, "\033[", next.size() + 1, ";1H");  // park the cursor
  return o;
}

std::string EventLog::Update(const v1::Job& job, const v1::CandidateProgress* progress,
                             const WatchTiming& timing) {
  std::string out;
  if (job.state() != job_state_ && job.state() != v1::JOB_STATE_UNSPECIFIED) {
    job_state_ = job.state();
    absl::StrAppend(&out, "job ", job.id(), " ", JobStateName(job.state()), " after ",
                    FormatDuration(timing.elapsed_seconds), "\n");
  }
  for (const v1::Candidate& c : job.candidates()) {
    auto it = printed_.find(c.sequence());
    if (it != printed_.end() && it->second == c.state()) continue;
    printed_[c.sequence()] = c.state();
    absl::StrAppendFormat(&out, "candidate #%d k=%d c=%d %s", c.sequence(), c.k(), c.c(),
                          CandidateStateName(c.state()));
    if (c.state() == v1::CANDIDATE_STATE_DONE) {
      absl::StrAppendFormat(&out, " acc %.4f in %.1fs", c.best_validation_accuracy(),
                            c.duration_seconds());
    }
    if (!c.error().empty()) {
      absl::StrAppend(&out, " (", c.error(), ")");
    } else {
      for (const auto& v : c.violations())
        absl::StrAppend(&out, " (", ViolationBrief(v, false), ")");
    }
    if (c.state() == v1::CANDIDATE_STATE_DONE) {
      absl::StrAppend(&out, "; elapsed ", FormatDuration(timing.elapsed_seconds), ", ",
                      EtaText(timing, IsTerminal(job.state())));
    }
    absl::StrAppend(&out, "\n");
  }
  if (job.state() == v1::JOB_STATE_PREPARING && job.has_preparation()) {
    const v1::Preparation& p = job.preparation();
    const int decile = PreparationDecile(p);
    if (p.test_set() != preparation_test_set_) preparation_decile_ = -1;  // the next dataset
    if (decile > preparation_decile_) {
      absl::StrAppend(&out, FormatPreparation(p, ""), "\n");
      preparation_decile_ = decile;
      preparation_test_set_ = p.test_set();
    }
  }
  const v1::FinalTraining& f = job.final_training();
  if (f.state() == v1::CANDIDATE_STATE_UNSPECIFIED) return out;
  if (f.state() != final_state_) {
    absl::StrAppendFormat(&out, "final training k=%d c=%d %s", f.k(), f.c(),
                          CandidateStateName(f.state()));
    if (f.state() == v1::CANDIDATE_STATE_DONE) {
      absl::StrAppendFormat(&out, " best validation %.4f (epoch %d), uint8 %.4f in %.1fs",
                            f.best_validation_accuracy(), f.best_epoch(),
                            f.quantized_validation_accuracy(), f.duration_seconds());
    }
    if (!f.error().empty()) absl::StrAppend(&out, " (", f.error(), ")");
    absl::StrAppend(&out, "\n");
    final_epoch_ = 0;
    final_state_ = f.state();
  } else if (f.state() == v1::CANDIDATE_STATE_RUNNING && progress != nullptr &&
             progress->final_training() && progress->epoch() > final_epoch_) {
    absl::StrAppendFormat(&out, "final training epoch %d/%d; elapsed %s, %s\n", progress->epoch(),
                          progress->epochs(), FormatDuration(timing.elapsed_seconds),
                          EtaText(timing, false));
    final_epoch_ = progress->epoch();
  }
  return out;
}

}  // namespace nanonas
