#include "client/commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/progress.h"
#include "client/targets.h"
#include "client/watch_view.h"
#include "common/api/violations.h"
#include "common/base/sha256.h"
#include "common/base/units.h"
#include "google/protobuf/util/json_util.h"

namespace nanonas {
namespace v1 = nanonas::v1;

namespace {

std::string Limit(int64_t v, bool bytes) {
  if (v <= 0) return "-";
  return bytes ? FormatBytes(v) : FormatCount(v);
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(t.seconds()),
                          absl::LocalTimeZone());
}

// Applies one watch event to the local copy of the job.
void Apply(const v1::JobEvent& e, v1::Job* job, v1::CandidateProgress* progress,
           bool* has_progress) {
  if (e.has_job()) *job = e.job();
  switch (e.kind_case()) {
    case v1::JobEvent::kJobState:
      job->set_state(e.job_state());
      break;
    case v1::JobEvent::kCandidate: {
      const v1::Candidate& c = e.candidate();
      bool found = false;
      for (auto& existing : *job->mutable_candidates()) {
        if (existing.k() == c.k() && existing.c() == c.c()) {
          existing = c;
          found = true;
        }
      }
      if (!found) *job->add_candidates() = c;
      std::sort(job->mutable_candidates()->begin(), job->mutable_candidates()->end(),
                [](const v1::Candidate& a, const v1::Candidate& b) {
                  return a.sequence() < b.sequence();
                });
      if (c.state() != v1::CANDIDATE_STATE_RUNNING && *has_progress && progress->k() == c.k() &&
          progress->c() == c.c() && !progress->final_training()) {
        *has_progress = false;
      }
      break;
    }
    case v1::JobEvent::kProgress:
      *progress = e.progress();
      *has_progress = true;
      break;
    case v1::JobEvent::kPreparation:
      *job->mutable_preparation() = e.preparation();
      break;
    case v1::JobEvent::kFinalTraining:
      *job->mutable_final_training() = e.final_training();
      if (e.final_training().state() != v1::CANDIDATE_STATE_RUNNING) *has_progress = false;
      break;
    default:
      break;
  }
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &out, o);
  return out;
}

std::string ProgressBar(double fraction, int width) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  int filled = static_cast<int>(fraction * width + 0.5);
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '-'), "] ",
                      absl::StrFormat("%3d%%", static_cast<int>(fraction * 100 + 0.5)));
}

int ReportRpcError(const grpc::Status& s, const std::string& what, const GlobalOptions& g,
                   std::ostream& err) {
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      err << "nanonas: cannot reach the coordinator at " << g.server << " (" << s.error_message()
          << "). Is it running? Point --server or NANONAS_SERVER at it.\n";
      return kExitServer;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      err << "nanonas: " << what << ": no answer from " << g.server << " in time"
          << " (raise --timeout if the server is busy)\n";
      return kExitServer;
    case grpc::StatusCode::NOT_FOUND:
      err << "nanonas: " << what << ": " << s.error_message() << "\n";
      return kExitNotFound;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::ALREADY_EXISTS:
      err << "nanonas: " << what << " rejected by the server: " << s.error_message() << "\n";
      return kExitUsage;
    default:
      err << "nanonas: " << what << " failed (" << s.error_code() << "): " << s.error_message()
          << "\n";
      return kExitServer;
  }
}

// The job line and its input, variant and limits.
void AppendJobHeader(const v1::Job& job, std::string* o) {
  const auto& spec = job.spec();
  const auto& lim = spec.constraints();
  absl::StrAppend(o, "job ", job.id(), spec.name().empty() ? "" : " \"" + spec.name() + "\"", "  ",
                  JobStateName(job.state()), "\n");
  absl::StrAppend(o, "  input ", spec.input().height(), "x", spec.input().width(), "x",
                  spec.input().channels(), ", variant ",
                  spec.variant().empty() ? "2023" : spec.variant(), ", limits: RAM ",
                  Limit(lim.ram_bytes(), true), ", Flash ", Limit(lim.flash_bytes(), true),
                  ", MACC ", Limit(lim.macc(), false));
  if (lim.host_memory_bytes() > 0)
    absl::StrAppend(o, ", host ", FormatBytes(lim.host_memory_bytes()));
  if (!lim.target().empty()) absl::StrAppend(o, " (", lim.target(), ")");
  absl::StrAppend(o, "\n");
  if (job.state() == v1::JOB_STATE_PREPARING && job.has_preparation()) {
    absl::StrAppend(o, "  ", FormatPreparation(job.preparation(), ""), "\n");
  }
  absl::StrAppend(o, "\n");
}

// One row per candidate.
void AppendCandidateTable(const v1::Job& job, std::string* o) {
  absl::StrAppendFormat(o, "%3s %3s %2s  %-15s %9s %10s %10s %8s %6s %10s %8s  %s\n", "#", "k", "c",
                        "state", "MACC", "Flash", "RAM", "best acc", "epochs", "peak mem", "time",
                        "worker / note");
  for (const v1::Candidate& c : job.candidates()) {
    const std::string acc = AccuracyText(c);
    const std::string note = CandidateNote(c, /*with_excess=*/true);
    absl::StrAppendFormat(
        o, "%3d %3d %2d  %-15s %9s %10s %10s %8s %6s %10s %8s  %s\n", c.sequence(), c.k(), c.c(),
        CandidateStateName(c.state()), c.macc() > 0 ? FormatCount(c.macc()) : "-",
        c.flash_bytes() > 0 ? FormatBytes(c.flash_bytes()) : "-",
        c.ram_bytes() > 0 ? FormatBytes(c.ram_bytes()) : "-", acc,
        c.epochs_size() > 0 ? absl::StrCat(c.epochs_size()) : "-",
        c.peak_memory_bytes() > 0 ? FormatBytes(c.peak_memory_bytes()) : "-",
        c.duration_seconds() > 0 ? absl::StrFormat("%.1fs", c.duration_seconds()) : "-", note);
  }
}

// The search's result and why it stopped, once there is one.
void AppendSearchResult(const v1::Job& job, std::string* o) {
  if (job.state() == v1::JOB_STATE_SUCCEEDED || job.result().found() ||
      !job.result().stop_reason().empty()) {
    const auto& r = job.result();
    if (r.found()) {
      absl::StrAppendFormat(
          o, "\nresult: k=%d c=%d, validation accuracy %.4f, MACC %s, Flash %s, RAM %s\n", r.k(),
          r.c(), r.validation_accuracy(), r.macc() > 0 ? FormatCount(r.macc()) : "-",
          r.flash_bytes() > 0 ? FormatBytes(r.flash_bytes()) : "-",
          r.ram_bytes() > 0 ? FormatBytes(r.ram_bytes()) : "-");
    } else if (IsTerminal(job.state())) {
      absl::StrAppend(o, "\nresult: no candidate fits the limits\n");
    }
    if (!r.stop_reason().empty()) absl::StrAppend(o, "stopped: ", r.stop_reason(), "\n");
  }
}

// The final training: its state or progress line, or its accuracies and the model's size.
void AppendFinalTraining(const v1::Job& job, const v1::CandidateProgress* progress,
                         std::string* o) {
  if (job.final_training().state() != v1::CANDIDATE_STATE_DONE) {
    // Pending, running or failed: no accuracy figure until there is one.
    std::string line = FinalTrainingLine(job.final_training(), progress);
    if (!line.empty()) absl::StrAppend(o, line, "\n");
  } else {
    const auto& f = job.final_training();
    absl::StrAppendFormat(o, "final training: %s, best validation accuracy %.4f",
                          CandidateStateName(f.state()), f.best_validation_accuracy());
    if (f.state() == v1::CANDIDATE_STATE_DONE) {
      absl::StrAppendFormat(o, " (epoch %d of %d), uint8 validation accuracy %.4f", f.best_epoch(),
                            f.epochs_size(), f.quantized_validation_accuracy());
    }
    if (f.has_test_accuracy()) {
      absl::StrAppendFormat(o, ", test accuracy float %.4f / uint8 %.4f", f.float_test_accuracy(),
                            f.quantized_test_accuracy());
    }
    if (!f.error().empty()) absl::StrAppend(o, " (", f.error(), ")");
    absl::StrAppend(o, "\n");
  }
  if (job.final_training().state() == v1::CANDIDATE_STATE_DONE) {
    absl::StrAppendFormat(o, "model: Flash %s (the .tflite file), RAM %s\n",
                          FormatBytes(job.final_training().flash_bytes()),
                          FormatBytes(job.final_training().ram_bytes()));
  }
}

std::string RenderJob(const v1::Job& job, const v1::CandidateProgress* progress) {
  std::string o;
  AppendJobHeader(job, &o);
  AppendCandidateTable(job, &o);
  if (progress != nullptr && !IsTerminal(job.state())) {
    const int epochs = std::max(progress->epochs(), 1);
    const double frac = ProgressFraction(*progress);
    absl::StrAppendFormat(&o, "\n  %s k=%d c=%d  epoch %d/%d  %s  loss %.4f  acc %.4f\n",
                          progress->final_training() ? "final training" : "training", progress->k(),
                          progress->c(), progress->epoch(), epochs, ProgressBar(frac, 30),
                          progress->running_loss(), progress->running_accuracy());
  }
  AppendSearchResult(job, &o);
  AppendFinalTraining(job, progress, &o);
  for (const auto& a : job.artifacts()) {
    absl::StrAppend(&o, "artifact ", a.name(), " (", FormatBytes(a.size_bytes()), ")\n");
  }
  if (!job.artifacts().empty()) {
    absl::StrAppend(&o, "download: nanonas get ", job.id(), " --out DIR\n");
  }
  if (!job.error().empty()) absl::StrAppend(&o, "error: ", job.error(), "\n");
  return o;
}

Cli::Cli(std::shared_ptr<v1::Coordinator::StubInterface> stub, GlobalOptions global,
         std::ostream& out, std::ostream& err, bool interactive, bool progress)
    : stub_(std::move(stub)),
      global_(std::move(global)),
      out_(out),
      err_(err),
      interactive_(interactive),
      progress_(progress) {}

void Cli::SetDeadline(grpc::ClientContext* ctx, double seconds) const {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}

int Cli::Run(const Command& c) {
  switch (c.kind) {
    case Command::Kind::kSubmit:
      return Submit(c);
    case Command::Kind::kWatch:
      return Watch(c.job_id);
    case Command::Kind::kList:
      return List(c);
    case Command::Kind::kGet:
      return Get(c.job_id, c.out_dir);
    case Command::Kind::kCancel:
      return Cancel(c.job_id);
    case Command::Kind::kTargets:
      return Targets();
    case Command::Kind::kHealth:
      err_ << "nanonas: health needs a channel (use CheckHealth)\n";
      return kExitUsage;
    case Command::Kind::kHelp:
      out_ << Usage();
      return kExitOk;
  }
  return kExitUsage;
}

// Watch state for one `nanonas watch`: the clock, the final training's measured pace, and
// what the terminal shows (or what the log printed).
struct Cli::WatchScreen {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw = start - std::chrono::seconds(10);
  std::vector<std::string> shown;  // the frame on screen (terminal)
  TerminalGeometry size{0, 0};     // the terminal's size when `shown` was drawn
  EventLog log;                    // plain output
  int final_epoch = 0;             // the final training's pace: epochs begun since final_t0
  int final_epoch0 = 0;
  std::chrono::steady_clock::time_point final_t0;

  WatchTiming Timing(const v1::Job& job, const v1::CandidateProgress* progress) {
    const auto now = std::chrono::steady_clock::now();
    double elapsed = std::chrono::duration<double>(now - start).count();
    const int64_t now_unix = absl::ToUnixSeconds(absl::Now());
    if (job.started().seconds() > 0 && now_unix >= job.started().seconds()) {
      const int64_t end = job.finished().seconds() > 0 ? job.finished().seconds() : now_unix;
      elapsed = static_cast<double>(std::max<int64_t>(end - job.started().seconds(), 0));
    }
    double final_rate = 0;
    if (progress != nullptr && progress->final_training() && progress->epoch() != final_epoch) {
      if (final_epoch == 0) {
        final_epoch0 = progress->epoch();
        final_t0 = now;
      }
      final_epoch = progress->epoch();
    }
    if (final_epoch > final_epoch0) {
      final_rate =
          std::chrono::duration<double>(now - final_t0).count() / (final_epoch - final_epoch0);
    }
    return EstimateTiming(job, progress, elapsed, final_rate);
  }

  // One update: a line per event (plain output), or at most every 200 ms (unless `force`) the
  // changed lines of the frame (terminal).
  void Draw(std::ostream& out, bool interactive, const v1::Job& job, const v1::CandidateProgress* p,
            bool force) {
    if (!interactive) {  // plain output (logs, pipes): one line per event
      out << log.Update(job, p, Timing(job, p));
      out.flush();
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_draw < std::chrono::milliseconds(200)) return;
    last_draw = now;
    const TerminalGeometry terminal = TerminalSize();
    std::vector<std::string> frame =
        RenderWatchFrame(job, p, Timing(job, p), terminal.columns, terminal.lines);
    if (terminal.columns != size.columns || terminal.lines != size.lines) {
      shown.clear();  // first frame or resized: start again on a clear screen
      size = terminal;
    }
    if (shown.empty()) out << "\033[H\033[2J";
    out << FrameUpdate(shown, frame);
    shown = std::move(frame);
    out.flush();
  }

  // The last frame with every row (terminal): what fits the screen replaces the live frame in
  // place, the rest follows line by line (the top scrolls into the scrollback, once).
  void DrawLast(std::ostream& out, const v1::Job& job) {
    const TerminalGeometry terminal = TerminalSize();
    std::vector<std::string> frame =
        RenderWatchFrame(job, nullptr, Timing(job, nullptr), terminal.columns, 1 << 20);
    const size_t fit =
        shown.empty() ? 0 : std::min<size_t>(frame.size(), std::max(terminal.lines - 1, 1));
    out << FrameUpdate(shown, {frame.begin(), frame.begin() + fit});
    for (size_t i = fit; i < frame.size(); ++i) out << frame[i] << "\n";
    for (const auto& a : job.artifacts()) {
      out << "artifact " << a.name() << " (" << FormatBytes(a.size_bytes()) << ")\n";
    }
    if (!job.artifacts().empty()) out << "download: nanonas get " << job.id() << " --out DIR\n";
  }
};

int Cli::Watch(const std::string& job_id) {
  v1::Job job;
  v1::CandidateProgress progress;
  bool has_progress = false, have_job = false;
  int64_t after = 0;
  int reconnects = 0;
  WatchScreen screen;
  auto draw = [&](bool force) {
    if (global_.json || !have_job) return;
    screen.Draw(out_, interactive_, job, has_progress ? &progress : nullptr, force);
  };
  while (true) {
    grpc::ClientContext ctx;  // a stream: no deadline, the job may run for hours
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    req.set_after_sequence(after);
    auto reader = stub_->WatchJob(&ctx, req);
    v1::JobEvent e;
    while (reader->Read(&e)) {
      reconnects = 0;
      if (e.sequence() > 0 && e.kind_case() != v1::JobEvent::kProgress &&
          e.kind_case() != v1::JobEvent::kPreparation) {
        after = std::max(after, e.sequence());
      }
      if (e.has_job()) have_job = true;
      Apply(e, &job, &progress, &has_progress);
      if (global_.json) {
        out_ << ToJson(e) << "\n";
        out_.flush();
      } else {
        draw(e.kind_case() != v1::JobEvent::kProgress &&
             e.kind_case() != v1::JobEvent::kPreparation);
      }
      if (have_job && IsTerminal(job.state())) {
        ctx.TryCancel();
        break;
      }
    }
    grpc::Status s = reader->Finish();
    if (have_job && IsTerminal(job.state())) break;
    if (!s.ok() && s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::INTERNAL &&
        s.error_code() != grpc::StatusCode::UNKNOWN) {
      return ReportRpcError(s, "watch " + job_id, global_, err_);
    }
    // The stream broke (coordinator restart, network): resume after the last event seen.
    if (++reconnects > 30) {
      return ReportRpcError(
          s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended") : s,
          "watch " + job_id, global_, err_);
    }
    if (!global_.json) err_ << "nanonas: watch stream interrupted; reconnecting...\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(500 * reconnects, 3000)));
  }
  if (!global_.json) {
    if (interactive_) {
      screen.DrawLast(out_, job);
    } else {
      draw(true);
      out_ << "\n" << RenderJob(job, nullptr);
    }
    out_.flush();
  }
  return job.state() == v1::JOB_STATE_SUCCEEDED ? kExitOk : kExitJobFailed;
}

int Cli::List(const Command& c) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, global_.timeout_seconds);
  v1::ListJobsRequest req;
  for (auto s : c.states) req.add_states(s);
  req.set_limit(c.limit);
  v1::ListJobsResponse resp;
  grpc::Status s = stub_->ListJobs(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError(s, "list", global_, err_);
  if (global_.json) {
    out_ << ToJson(resp) << "\n";
    return kExitOk;
  }
  out_ << absl::StrFormat("%-36s %-10s %-20s %-19s %5s  %s\n", "JOB", "STATE", "NAME", "CREATED",
                          "CANDS", "RESULT");
  for (const v1::Job& j : resp.jobs()) {
    std::string result = j.result().found()
                             ? absl::StrFormat("k=%d c=%d acc %.4f", j.result().k(), j.result().c(),
                                               j.result().validation_accuracy())
                             : "-";
    out_ << absl::StrFormat("%-36s %-10s %-20s %-19s %5d  %s\n", j.id(), JobStateName(j.state()),
                            j.spec().name(), FormatTime(j.created()), j.candidates_size(), result);
  }
  return kExitOk;
}

int Cli::Get(const std::string& job_id, const std::string& out_dir) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, global_.timeout_seconds);
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  v1::Job job;
  grpc::Status s = stub_->GetJob(&ctx, req, &job);
  if (!s.ok()) return ReportRpcError(s, "get " + job_id, global_, err_);
  if (out_dir.empty()) {
    out_ << (global_.json ? ToJson(job) + "\n" : RenderJob(job, nullptr));
    return kExitOk;
  }
  if (job.artifacts().empty()) {
    err_ << "nanonas: job " << job_id << " has no artifacts yet (" << JobStateName(job.state())
         << "); they are written when the job succeeds: `nanonas watch " << job_id << "`\n";
    return kExitNotFound;
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    err_ << "nanonas: cannot create " << out_dir << ": " << ec.message() << "\n";
    return kExitUsage;
  }
  std::vector<std::string> written;
  for (const v1::Artifact& a : job.artifacts()) {
    grpc::ClientContext dctx;
    SetDeadline(&dctx, std::max(global_.timeout_seconds, 60.0));
    v1::DownloadArtifactRequest dreq;
    dreq.set_job_id(job_id);
    dreq.set_name(a.name());
    auto reader = stub_->DownloadArtifact(&dctx, dreq);
    std::string bytes;
    v1::ArtifactChunk chunk;
    while (reader->Read(&chunk)) bytes += chunk.data();
    grpc::Status ds = reader->Finish();
    if (!ds.ok()) return ReportRpcError(ds, "download " + a.name(), global_, err_);
    const std::string hex = Sha256Hex(bytes);
    if (static_cast<int64_t>(bytes.size()) != a.size_bytes() ||
        (!a.sha256().empty() && hex != a.sha256())) {
      err_ << "nanonas: " << a.name() << " arrived damaged (" << bytes.size() << " bytes, sha256 "
           << hex << "; expected " << a.size_bytes() << " bytes, " << a.sha256()
           << "): run the command again\n";
      return kExitServer;
    }
    // Names come from the server: never write outside out_dir.
    if (a.name().empty() || a.name().find('/') != std::string::npos || a.name() == "." ||
        a.name() == "..") {
      err_ << "nanonas: refusing artifact name '" << a.name() << "'\n";
      return kExitServer;
    }
    const std::string path = (std::filesystem::path(out_dir) / a.name()).string();
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() ||
        std::fclose(f) != 0) {
      err_ << "nanonas: cannot write " << path << "\n";
      return kExitUsage;
    }
    written.push_back(path);
    if (!global_.json) out_ << path << " (" << FormatBytes(a.size_bytes()) << ")\n";
  }
  if (global_.json) {
    std::string o = absl::StrCat("{\"job_id\": \"", job_id, "\", \"files\": [");
    for (size_t i = 0; i < written.size(); ++i) {
      absl::StrAppend(&o, i ? ", " : "", "\"", written[i], "\"");
    }
    out_ << o << "]}\n";
  }
  return kExitOk;
}

int Cli::Cancel(const std::string& job_id) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, global_.timeout_seconds);
  v1::CancelJobRequest req;
  req.set_job_id(job_id);
  v1::CancelJobResponse resp;
  grpc::Status s = stub_->CancelJob(&ctx, req, &resp);
  if (!s.ok()) return ReportRpcError(s, "cancel " + job_id, global_, err_);
  if (global_.json) {
    out_ << ToJson(resp) << "\n";
  } else {
    out_ << "job " << job_id << ": " << JobStateName(resp.job().state()) << "\n";
  }
  return kExitOk;
}

int Cli::Targets() {
  if (global_.json) {
    std::string o = "[";
    bool first = true;
    for (const BoardPreset& b : BoardPresets()) {
      absl::StrAppend(
          &o, first ? "" : ", ",
          absl::StrFormat("{\"name\": \"%s\", \"mcu\": \"%s\", \"ram_bytes\": %d, "
                          "\"flash_bytes\": %d, \"coremark\": %d, \"macc\": %d}",
                          b.name, b.mcu, b.ram_bytes, b.flash_bytes, b.coremark, b.macc()));
      first = false;
    }
    out_ << o << "]\n";
    return kExitOk;
  }
  out_ << absl::StrFormat("%-20s %-36s %9s %9s %8s %8s\n", "BOARD", "MCU", "RAM", "FLASH",
                          "COREMARK", "MACC");
  for (const BoardPreset& b : BoardPresets()) {
    out_ << absl::StrFormat("%-20s %-36s %9s %9s %8d %8s\n", b.name, b.mcu,
                            FormatBytes(b.ram_bytes), FormatBytes(b.flash_bytes), b.coremark,
                            FormatCount(b.macc()));
  }
  out_ << "MACC = CoreMark x 10^4 (the NanoNAS authors' rule of thumb).\n";
  return kExitOk;
}

}  // namespace nanonas
