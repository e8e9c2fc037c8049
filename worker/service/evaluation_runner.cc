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

class SlotGuard {
 public:
  SlotGuard(std::atomic<int>& busy, WorkerMetrics* metrics) : busy_(busy), metrics_(metrics) {}
  ~SlotGuard() {
    int now = --busy_;
    if (metrics_) metrics_->SetBusySlots(now);
  }

 private:
  std::atomic<int>& busy_;
  WorkerMetrics* metrics_;
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
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
  int now = ++busy_;
  SlotGuard guard(busy_, metrics_);
  if (now > options_.slots) {
    if (metrics_) metrics_->RecordEvaluation("rejected", 0, 0, 0);
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", options_.slots,
                     " evaluation slots of this worker are busy; retry on another worker"));
  }
  if (metrics_) metrics_->SetBusySlots(now);
  const auto start = std::chrono::steady_clock::now();
  NANONAS_LOG(INFO) << "evaluation " << request.evaluation_id() << " of job " << request.job_id()
                    << ": k=" << request.k() << " c=" << request.c()
                    << (request.final_training() ? " (final training)" : "");

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
      result = RunChild(request, (*lease)->path(), *test_lease ? (*test_lease)->path() : "",
                        EffectiveBudget(request), sink, cancelled);
    }
  }
  result.set_duration_seconds(SecondsSince(start));
  NANONAS_LOG(INFO) << "evaluation " << request.evaluation_id() << ": "
                    << nanonas::v1::CandidateState_Name(result.state())
                    << (result.error().empty() ? "" : " (" + result.error() + ")") << " in "
                    << result.duration_seconds() << " s, peak "
                    << FormatBytes(result.peak_memory_bytes());
  if (metrics_) {
    metrics_->RecordEvaluation(OutcomeLabel(result.state()), result.duration_seconds(),
                               result.train_images_per_second(), result.peak_memory_bytes());
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

  FrameDecoder decoder;
  bool have_result = false, killed_cancel = false, killed_memory = false, protocol_error = false;
  int64_t max_polled_rss = 0;
  std::string error_detail;
  char buf[65536];
  while (true) {
    struct pollfd pfd = {child->stdout_fd(), POLLIN, 0};
    int rc = poll(&pfd, 1, options_.rss_poll_ms);
    if (rc < 0 && errno != EINTR) break;
    bool eof = false;
    if (rc > 0) {
      ssize_t n = read(child->stdout_fd(), buf, sizeof(buf));
      if (n < 0 && errno != EINTR && errno != EAGAIN) eof = true;
      if (n == 0) eof = true;
      if (n > 0) decoder.Append(buf, static_cast<size_t>(n));
      std::string payload;
      while (true) {
        auto got = decoder.Next(&payload);
        if (!got.ok()) {
          protocol_error = true;
          error_detail = std::string(got.status().message());
          child->Kill(SIGKILL);
          break;
        }
        if (!*got) break;
        EvaluateEvent event;
        if (!event.ParseFromString(payload)) {
          protocol_error = true;
          error_detail = "unparsable event from the evaluation process";
          child->Kill(SIGKILL);
          break;
        }
        if (event.has_result()) {
          result = event.result();
          have_result = true;
        } else if (sink) {
          sink(event);
        }
      }
    }
    if (eof) break;
    if (!killed_cancel && cancelled && cancelled()) {
      killed_cancel = true;
      child->Kill(SIGKILL);
    }
    int64_t rss = child->CurrentRssBytes();
    max_polled_rss = std::max(max_polled_rss, rss);
    if (!killed_memory && budget > 0 && rss > budget) {
      killed_memory = true;
      error_detail = absl::StrCat("resident memory ", FormatBytes(rss), " exceeded the budget ",
                                  FormatBytes(budget));
      child->Kill(SIGKILL);
    }
  }
  // The output is closed: the child is exiting. One that lingers (hung after closing its
  // output) is still cancellable and is killed after kLingerMs.
  constexpr int kLingerMs = 5000;
  absl::StatusOr<ChildExit> exit = absl::UnknownError("not reaped");
  const auto eof_at = std::chrono::steady_clock::now();
  bool killed_lingering = false;
  while (true) {
    auto reaped = child->TryWait();
    if (!reaped.ok()) {
      exit = reaped.status();
      break;
    }
    if (reaped->has_value()) {
      exit = **reaped;
      break;
    }
    if (!killed_cancel && cancelled && cancelled()) {
      killed_cancel = true;
      child->Kill(SIGKILL);
    }
    if (!killed_lingering &&
        std::chrono::steady_clock::now() - eof_at > std::chrono::milliseconds(kLingerMs)) {
      killed_lingering = true;
      child->Kill(SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The child's own VmHWM when it reported one; otherwise the highest RSS polled (wait4's
  // ru_maxrss includes the worker's own memory, inherited through posix_spawn's exec).
  int64_t peak = std::max(max_polled_rss, have_result ? result.peak_memory_bytes() : 0);
  std::string how = exit.ok() ? exit->Describe() : "ended";
  const bool clean_exit = exit.ok() && exit->exited && exit->exit_code == 0;
  if (killed_cancel) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_CANCELLED);
    result.set_error("cancelled: the evaluation process was killed");
  } else if (killed_memory) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE);
    result.set_error(error_detail);
  } else if (killed_lingering) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
    result.set_error(absl::StrCat("evaluation process did not exit within ", kLingerMs / 1000,
                                  " s of closing its output; killed"));
  } else if (protocol_error) {
    result = EvaluateResult();
    result.set_state(nanonas::v1::CANDIDATE_STATE_FAILED);
    result.set_error(error_detail);
  } else if (!have_result || !clean_exit) {
    result = EvaluateResult();
    if (budget > 0 && peak > budget) {
      result.set_state(nanonas::v1::CANDIDATE_STATE_HOST_INFEASIBLE);
      result.set_error(absl::StrCat("evaluation process ", how, " after its resident memory ",
                                    FormatBytes(peak), " exceeded the budget ",
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
  return result;
}

}  // namespace nanonas
