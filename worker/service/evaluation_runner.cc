#include "worker/service/evaluation_runner.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/units.h"
#include "worker/service/child_process.h"
#include "worker/service/child_protocol.h"

namespace nanonas {
namespace {

using nanonas::v1::CandidateState;
using nanonas::v1::EvaluateEvent;
using nanonas::v1::EvaluateRequest;
using nanonas::v1::EvaluateResult;

// Takes up to `wanted` of `slots` slots (at least one) from `busy`; returns the slots taken, 0
// when none is free. Releases them when destroyed.
class SlotGuard {
 public:
  SlotGuard(std::atomic<int>& busy, int slots, int wanted, WorkerMetrics* metrics)
      : busy_(busy), metrics_(metrics) {
    int now = busy_.load();
    while (now < slots) {
      const int take = std::min(std::max(1, wanted), slots - now);
      if (busy_.compare_exchange_weak(now, now + take)) {
        taken_ = take;
        if (metrics_) metrics_->SetBusySlots(now + take);
        break;
      }
    }
  }
  ~SlotGuard() {
    if (taken_ == 0) return;
    int now = busy_ -= taken_;
    if (metrics_) metrics_->SetBusySlots(now);
  }
  int taken() const { return taken_; }

 private:
  std::atomic<int>& busy_;
  WorkerMetrics* metrics_;
  int taken_ = 0;
};

// What watching a child produced: its result (if it sent one) and why it was killed, if it was.
struct Watch {
  EvaluateResult result;
  bool have_result = false, killed_cancel = false, killed_memory = false, protocol_error = false;
  int64_t max_rss = 0;        // highest VmRSS polled
  int64_t max_anonymous = 0;  // highest RssAnon polled
  std::string error_detail;
};

// Decodes the frames buffered in `decoder`: events to `sink`, the result into `w`. Kills the child
// on a protocol error.
void TakeFrames(FrameDecoder& decoder, ChildProcess& child, const EvaluationRunner::EventSink& sink,
                Watch& w) {
  std::string payload;
  while (true) {
    auto got = decoder.Next(&payload);
    if (!got.ok()) {
      w.protocol_error = true;
      w.error_detail = std::string(got.status().message());
      child.Kill(SIGKILL);
      return;
    }
    if (!*got) return;
    EvaluateEvent event;
    if (!event.ParseFromString(payload)) {
      w.protocol_error = true;
      w.error_detail = "unparsable event from the evaluation process";
      child.Kill(SIGKILL);
      return;
    }
    if (event.has_result()) {
      w.result = event.result();
      w.have_result = true;
    } else if (sink) {
      sink(event);
    }
  }
}

// Samples the child's memory; kills it when its anonymous memory is over the budget.
void PollMemory(ChildProcess& child, int64_t budget, Watch& w) {
  w.max_rss = std::max(w.max_rss, child.CurrentRssBytes());
  const int64_t anonymous = child.CurrentRssAnonBytes();
  w.max_anonymous = std::max(w.max_anonymous, anonymous);
  if (!w.killed_memory && budget > 0 && anonymous > budget) {
    w.killed_memory = true;
    w.error_detail = absl::StrCat("anonymous memory ", FormatBytes(anonymous),
                                  " exceeded the budget ", FormatBytes(budget));
    child.Kill(SIGKILL);
  }
}

// Relays the child's output until it closes, polling cancellation and memory every poll_ms.
Watch WatchChild(ChildProcess& child, int64_t budget, int poll_ms,
                 const EvaluationRunner::EventSink& sink,
                 const EvaluationRunner::CancelCheck& cancelled) {
  Watch w;
  FrameDecoder decoder;
  char buf[65536];
  while (true) {
    struct pollfd pfd = {child.stdout_fd(), POLLIN, 0};
    int rc = poll(&pfd, 1, poll_ms);
    if (rc < 0 && errno != EINTR) break;
    bool eof = false;
    if (rc > 0) {
      ssize_t n = read(child.stdout_fd(), buf, sizeof(buf));
      if (n < 0 && errno != EINTR && errno != EAGAIN) eof = true;
      if (n == 0) eof = true;
      if (n > 0) decoder.Append(buf, static_cast<size_t>(n));
      TakeFrames(decoder, child, sink, w);
    }
    // A last sample as the output closes: the child is exiting but still holds its memory.
    PollMemory(child, budget, w);
    if (eof) break;
    if (!w.killed_cancel && cancelled && cancelled()) {
      w.killed_cancel = true;
      child.Kill(SIGKILL);
    }
  }
  return w;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The output is closed: the child is exiting. One that lingers (hung after closing its output)
// is still cancellable and is killed after kLingerMs. Returns how it ended.
constexpr int kLingerMs = 5000;
absl::StatusOr<ChildExit> ReapChild(ChildProcess& child,
                                    const EvaluationRunner::CancelCheck& cancelled,
                                    bool* killed_cancel, bool* killed_lingering) {
  const auto eof_at = std::chrono::steady_clock::now();
  while (true) {
    auto reaped = child.TryWait();
    if (!reaped.ok()) return reaped.status();
    if (reaped->has_value()) return **reaped;
    if (!*killed_cancel && cancelled && cancelled()) {
      *killed_cancel = true;
      child.Kill(SIGKILL);
    }
    if (!*killed_lingering &&
        std::chrono::steady_clock::now() - eof_at > std::chrono::milliseconds(kLingerMs)) {
      *killed_lingering = true;
      child.Kill(SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

absl::Status ValidateEvaluateRequest(const EvaluateRequest& r) {
  if (r.dataset_id().empty()) return absl::InvalidArgumentError("dataset_id is empty");
  if (r.input().height() <= 0 || r.input().width() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("input size ", r.input().height(), "x",
                                                   r.input().width(), " must be positive"));
  }
  if (r.input().channels() != 1 && r.input().channels() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("input channels must be 1 or 3, got ", r.input().channels()));
  }
  if (r.k() < 1) return absl::InvalidArgumentError(absl::StrCat("k must be >= 1, got ", r.k()));
  if (r.c() < 0) return absl::InvalidArgumentError(absl::StrCat("c must be >= 0, got ", r.c()));
  if (r.validation_split() < 0 || r.validation_split() >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation_split must be in [0, 1), got ", r.validation_split()));
  }
  if (r.host_memory_bytes() < 0) {
    return absl::InvalidArgumentError("host_memory_bytes must not be negative");
  }
  return absl::OkStatus();
}

std::string OutcomeLabel(CandidateState state) {
  switch (state) {
    case nanonas::v1::CANDIDATE_STATE_DONE:
      return "done";
    case nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE:
      return "host_infeasible";
    case nanonas::v1::CANDIDATE_STATE_CANCELLED:
      return "cancelled";
    default:
      return "failed";
  }
}

EvaluationRunner::EvaluationRunner(EvaluationRunnerOptions options, DatasetCache* cache,
                                   DatasetCache::Fetcher fetcher, WorkerMetrics* metrics)
    : options_(std::move(options)), cache_(cache), fetcher_(std::move(fetcher)), metrics_(metrics) {
  if (metrics_) {
    metrics_->SetSlots(options_.slots);
    metrics_->SetBusySlots(0);
    metrics_->SetMemoryBudget(options_.memory_budget_bytes);
  }
}

int64_t EvaluationRunner::EffectiveBudget(const EvaluateRequest& request) const {
  int64_t a = options_.memory_budget_bytes, b = request.host_memory_bytes();
  if (a <= 0) return std::max<int64_t>(b, 0);
  if (b <= 0) return a;
  return std::min(a, b);
}

absl::StatusOr<EvaluateResult> EvaluationRunner::Run(const EvaluateRequest& request,
                                                     const EventSink& sink,
                                                     const CancelCheck& cancelled) {
  absl::Status valid = ValidateEvaluateRequest(request);
  if (!valid.ok()) {
    if (metrics_) metrics_->RecordEvaluation("rejected", 0, 0, 0);
    return valid;
  }
  SlotGuard guard(busy_, options_.slots, request.threads(), metrics_);
  if (guard.taken() == 0) {
    if (metrics_) metrics_->RecordEvaluation("rejected", 0, 0, 0);
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", options_.slots,
                     " evaluation slots of this worker are busy; retry on another worker"));
  }
  // The child trains with as many threads as slots were granted.
  EvaluateRequest granted = request;
  granted.set_threads(guard.taken());
  const auto start = std::chrono::steady_clock::now();
  NANONAS_LOG(INFO) << "evaluation " << request.evaluation_id() << " of job " << request.job_id()
                    << ": k=" << request.k() << " c=" << request.c()
                    << (request.final_training() ? " (final training)" : "") << ", "
                    << guard.taken() << " thread(s)";

  EvaluateResult result;
  bool was_hit = cache_->Contains(request.dataset_id());
  auto lease = cache_->Get(request.dataset_id(), fetcher_);
  if (metrics_) {
    metrics_->RecordDatasetFetch(!lease.ok() ? "error" : was_hit ? "hit" : "miss");
    metrics_->SetDatasetCacheBytes(cache_->size_bytes());
  }
  if (!lease.ok()) {
    if (lease.status().code() == absl::StatusCode::kInvalidArgument) return lease.status();
    result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
    result.set_error(
        absl::StrCat("dataset ", request.dataset_id(), " unavailable: ", lease.status().message()));
  } else if (cancelled && cancelled()) {
    result.set_state(nanonas::v1::CANDIDATE_STATE_CANCELLED);
    result.set_error("cancelled before the evaluation started");
  } else {
    // A final training scores the job's test set too: fetched and cached like the dataset.
    absl::StatusOr<std::unique_ptr<DatasetCache::Lease>> test_lease =
        std::unique_ptr<DatasetCache::Lease>();
    if (request.final_training() && !request.test_dataset_id().empty()) {
      test_lease = cache_->Get(request.test_dataset_id(), fetcher_);
    }
    if (!test_lease.ok()) {
      result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
      result.set_error(absl::StrCat("test set ", request.test_dataset_id(),
                                    " unavailable: ", test_lease.status().message()));
    } else {
      result = RunChild(granted, (*lease)->path(), *test_lease ? (*test_lease)->path() : "",
                        EffectiveBudget(request), sink, cancelled);
    }
  }
  result.set_duration_seconds(SecondsSince(start));
  NANONAS_LOG(INFO) << "evaluation " << request.evaluation_id() << ": "
                    << nanonas::v1::CandidateState_Name(result.state())
                    << (result.error().empty() ? "" : " (" + result.error() + ")") << " in "
                    << result.duration_seconds() << " s, peak "
                    << FormatBytes(result.peak_memory_bytes()) << " (anonymous "
                    << FormatBytes(result.peak_anonymous_bytes()) << ")";
  if (metrics_) {
    metrics_->RecordEvaluation(OutcomeLabel(result.state()), result.duration_seconds(),
                               result.train_images_per_second(), result.peak_memory_bytes());
    metrics_->RecordPeakAnonymousMemory(result.peak_anonymous_bytes());
  }
  return result;
}

EvaluateResult EvaluationRunner::RunChild(const EvaluateRequest& request,
                                          const std::string& dataset_path,
                                          const std::string& test_path, int64_t budget,
                                          const EventSink& sink, const CancelCheck& cancelled) {
  EvaluateResult result;
  std::vector<std::string> argv = options_.child_command;
  argv.insert(argv.end(), {"--dataset-file", dataset_path, "--memory-limit", absl::StrCat(budget)});
  if (!test_path.empty()) argv.insert(argv.end(), {"--test-dataset-file", test_path});
  auto spawned = ChildProcess::Spawn(argv);
  if (!spawned.ok()) {
    result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
    result.set_error(std::string(spawned.status().message()));
    return result;
  }
  std::unique_ptr<ChildProcess> child = std::move(*spawned);
  // A child that dies before reading its request closes the pipe: the write fails (EPIPE, and
  // SIGPIPE is ignored by the worker) and the exit status below says why.
  absl::Status sent = WriteFrame(child->stdin_fd(), request);
  child->CloseStdin();
  if (!sent.ok()) {
    NANONAS_LOG(WARNING) << "sending the request to the child: " << sent.message();
  }

  Watch w = WatchChild(*child, budget, options_.rss_poll_ms, sink, cancelled);
  bool& killed_cancel = w.killed_cancel;
  bool killed_lingering = false;
  absl::StatusOr<ChildExit> exit = ReapChild(*child, cancelled, &killed_cancel, &killed_lingering);
  // The child's own VmHWM when it reported one; otherwise the highest RSS polled (wait4's
  // ru_maxrss includes the worker's own memory, inherited through posix_spawn's exec).
  const bool have_result = w.have_result;
  if (have_result) result = w.result;
  int64_t peak = std::max(w.max_rss, have_result ? result.peak_memory_bytes() : 0);
  // Sampled: the highest RssAnon polled, or the child's own last reading with its result.
  const int64_t peak_anonymous =
      std::max(w.max_anonymous, have_result ? result.peak_anonymous_bytes() : 0);
  std::string how = exit.ok() ? exit->Describe() : "ended";
  const bool clean_exit = exit.ok() && exit->exited && exit->exit_code == 0;
  if (killed_cancel) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_CANCELLED);
    result.set_error("cancelled: the evaluation process was killed");
  } else if (w.killed_memory) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE);
    result.set_error(w.error_detail);
  } else if (killed_lingering) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
    result.set_error(absl::StrCat("evaluation process did not exit within ", kLingerMs / 1000,
                                  " s of closing its output; killed"));
  } else if (w.protocol_error) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
    result.set_error(w.error_detail);
  } else if (!have_result || !clean_exit) {
    result = EvaluateResult();
    if (budget > 0 && peak_anonymous > budget) {
      result.set_state(nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE);
      result.set_error(absl::StrCat("evaluation process ", how, " after its anonymous memory ",
                                    FormatBytes(peak_anonymous), " exceeded the budget ",
                                    FormatBytes(budget)));
    } else {
      result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
      std::string hint;
      if (exit.ok() && !exit->exited && exit->signal == SIGKILL) {
        hint = " (not by the worker: probably the kernel's out-of-memory killer)";
      }
      result.set_error(
          absl::StrCat("evaluation process ", how, have_result ? "" : " without a result", hint));
    }
  }
  result.set_peak_memory_bytes(peak);
  result.set_peak_anonymous_bytes(peak_anonymous);
  return result;
}

}  // namespace nanonas
