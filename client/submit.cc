// `nanonas submit`: the streamed upload (retried on UNAVAILABLE), the idempotent SubmitJob
// (retried with the same request_id) and following the job through its preparation.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <ostream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/progress.h"
#include "client/tar_writer.h"
#include "common/base/units.h"

namespace nanonas {
namespace v1 = nanonas::v1;

namespace {

constexpr int64_t kMaxUploadBytes = 4LL << 30;
constexpr size_t kChunkBytes = 1 << 20;
constexpr std::chrono::milliseconds kRedraw{100};

std::string SecondsText(std::chrono::milliseconds d) {
  return absl::StrFormat("%gs", static_cast<double>(d.count()) / 1000);
}

}  // namespace

std::string NewRequestId() {
  std::random_device rd;  // /dev/urandom (libstdc++)
  std::string id;
  for (int i = 0; i < 4; ++i) absl::StrAppend(&id, absl::StrFormat("%08x", rd()));
  return id;
}

std::chrono::milliseconds RetryBackoff(const RetryPolicy& policy, int retry) {
  return policy.first_backoff * (1 << std::clamp(retry - 1, 0, 16));
}

bool IsRetryableSubmit(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

grpc::ChannelArguments ClientChannelArguments() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Keepalive: streams without a deadline (upload, watch) fail with UNAVAILABLE within ~5.5 min
  // of the server dying instead of hanging. A ping after 310 s of silence, however long the
  // stream has sent no data, answered within 20 s or the connection is dropped. Not more often:
  // a gRPC server left at its defaults answers pings closer than 5 min apart on a stream without
  // data with GOAWAY "too many pings" (measured with grpc 1.51: a silent watch dropped after 3 s
  // with 1 s pings), and pings without any call are not sent at all (2 h minimum there).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 310 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& server) {
  return grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(),
                                   ClientChannelArguments());
}

void Cli::Pause(int retry) const { std::this_thread::sleep_for(RetryBackoff(retry_, retry)); }

// What one upload streams: the listing, its archive's size and the name the server stores.
struct Cli::UploadAttempt {
  const DatasetListing* listing;
  std::string name;
  int64_t archive_bytes = 0;  // 0: unknown
};

grpc::Status Cli::UploadOnce(const UploadAttempt& attempt, v1::DatasetInfo* info,
                             absl::Status* local) {
  grpc::ClientContext ctx;  // no deadline: the channel's keepalive notices a dead server
  auto writer = stub_->UploadDataset(&ctx, info);
  v1::UploadDatasetRequest req;
  auto* h = req.mutable_header();
  h->set_name(attempt.name);
  h->set_size_bytes(attempt.archive_bytes);  // the server computes the SHA-256 itself
  h->set_format("tar");
  std::optional<ProgressLine> line;
  if (progress_ && !global_.json) line.emplace(err_, kRedraw);
  int64_t sent = 0;
  if (writer->Write(req)) {
    auto streamed = StreamTar(*attempt.listing, kChunkBytes, [&](absl::string_view chunk) {
      v1::UploadDatasetRequest msg;
      msg.set_chunk(chunk.data(), chunk.size());
      const bool ok = writer->Write(msg);
      sent += static_cast<int64_t>(chunk.size());
      if (line) {
        line->Draw(
            absl::StrCat("uploading ", attempt.name, ": ",
                         FormatTransferProgress(sent, attempt.archive_bytes, line->Elapsed())));
      }
      return ok;
    });
    if (!streamed.ok() && !absl::IsAborted(streamed.status())) {
      *local = streamed.status();  // a file could not be read: drop the partial upload
      ctx.TryCancel();
    }
    if (streamed.ok()) writer->WritesDone();
  }
  grpc::Status s = writer->Finish();
  if (line) {
    line->Finish(s.ok() && local->ok() ? absl::StrCat("uploaded ", attempt.name, ": ",
                                                      FormatTransferSummary(sent, line->Elapsed()))
                                       : "");
  }
  return s;
}

int Cli::Upload(const std::string& dir, const std::string& name, v1::DatasetInfo* info) {
  auto listing = ListDatasetFolder(dir);
  if (!listing.ok()) {
    err_ << "nanonas: " << listing.status().message() << "\n";
    return listing.status().code() == absl::StatusCode::kNotFound ? kExitNotFound : kExitUsage;
  }
  UploadAttempt attempt{&*listing, name, 0};
  auto size = TarArchiveSize(*listing);
  if (size.ok()) attempt.archive_bytes = *size;
  if (std::max(attempt.archive_bytes, listing->file_bytes) > kMaxUploadBytes) {
    err_ << "nanonas: dataset folder '" << dir << "' is larger than "
         << FormatBytes(kMaxUploadBytes) << "; upload a smaller one\n";
    return kExitUsage;
  }
  if (!global_.json) {
    err_ << "uploading " << dir << ": " << listing->files.size() << " files in " << listing->classes
         << " classes ("
         << FormatBytes(attempt.archive_bytes > 0 ? attempt.archive_bytes : listing->file_bytes)
         << ")\n";
  }
  for (int n = 1;; ++n) {
    absl::Status local;
    grpc::Status s = UploadOnce(attempt, info, &local);
    if (!local.ok()) {
      err_ << "nanonas: " << local.message() << "\n";
      return kExitUsage;
    }
    if (s.ok()) break;
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE || n >= retry_.upload_attempts) {
      return ReportRpcError(s, "upload of " + dir, global_, err_);
    }
    if (!global_.json) {
      err_ << "nanonas: upload of " << dir << " interrupted (" << s.error_message()
           << "); sending it again in " << SecondsText(RetryBackoff(retry_, n)) << " (attempt "
           << n + 1 << " of " << retry_.upload_attempts << ")\n";
    }
    Pause(n);
  }
  if (!global_.json) {
    err_ << "dataset " << info->id() << ": " << info->num_images() << " images, "
         << info->class_names_size() << " classes\n";
  }
  return kExitOk;
}

int Cli::SubmitWithRetry(const v1::SubmitJobRequest& req, v1::SubmitJobResponse* resp) {
  for (int n = 1;; ++n) {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, global_.timeout_seconds);  // SubmitJob answers at once (QUEUED)
    grpc::Status s = stub_->SubmitJob(&ctx, req, resp);
    if (s.ok()) return kExitOk;
    if (!IsRetryableSubmit(s.error_code()) || n >= retry_.submit_attempts) {
      return ReportRpcError(s, "submit", global_, err_);
    }
    if (!global_.json) {
      err_ << "nanonas: submit: "
           << (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                   ? "no answer in time"
                   : absl::StrCat("server unavailable (", s.error_message(), ")"))
           << "; retrying in " << SecondsText(RetryBackoff(retry_, n)) << " (attempt " << n + 1
           << " of " << retry_.submit_attempts << "; the same request id " << req.request_id()
           << " cannot make a second job)\n";
    }
    Pause(n);
  }
}

int Cli::Submit(const Command& c) {
  v1::SubmitJobRequest req;
  *req.mutable_spec() = c.spec;
  req.set_request_id(NewRequestId());  // one per invocation: retries cannot make a second job
  v1::DatasetInfo info;
  std::string base = std::filesystem::path(c.dataset_dir).lexically_normal().filename().string();
  if (base.empty()) base = "dataset";
  int rc = Upload(c.dataset_dir, base, &info);
  if (rc != kExitOk) return rc;
  req.mutable_spec()->set_dataset_id(info.id());
  if (!c.test_dir.empty()) {
    v1::DatasetInfo test;
    rc = Upload(c.test_dir, base + "-test", &test);
    if (rc != kExitOk) return rc;
    req.mutable_spec()->set_test_dataset_id(test.id());
  }
  v1::SubmitJobResponse resp;
  rc = SubmitWithRetry(req, &resp);
  if (rc != kExitOk) return rc;
  if (global_.json) {
    out_ << "{\"job_id\": \"" << resp.job_id() << "\"}\n";
  } else {
    out_ << resp.job_id() << "\n";
  }
  out_.flush();
  if (progress_ && !global_.json) {
    rc = FollowPreparation(resp.job_id(), base);
    if (rc != kExitOk) return rc;
    if (!c.watch) {
      err_ << "follow it: nanonas watch " << resp.job_id() << "\n";
      return kExitOk;
    }
  }
  if (c.watch) return Watch(resp.job_id());
  return kExitOk;
}

int Cli::FollowPreparation(const std::string& job_id, const std::string& name) {
  ProgressLine line(err_, kRedraw);
  v1::Job job;
  v1::Preparation prep;  // the latest, from events or the job's snapshots
  bool have_job = false, have_prep = false, ended = false;
  int drawn_tenth = -1;
  for (int n = 1; !ended; ++n) {
    grpc::ClientContext ctx;  // a stream: no deadline; keepalive notices a dead server
    v1::WatchJobRequest req;
    req.set_job_id(job_id);
    auto reader = stub_->WatchJob(&ctx, req);
    v1::JobEvent e;
    while (!ended && reader->Read(&e)) {
      if (e.has_job()) {
        job = e.job();
        have_job = true;
        if (job.has_preparation()) prep = job.preparation(), have_prep = true;
      }
      if (e.kind_case() == v1::JobEvent::kJobState) job.set_state(e.job_state());
      if (e.kind_case() == v1::JobEvent::kPreparation) prep = e.preparation(), have_prep = true;
      if (!have_job) continue;
      if (job.state() == v1::JOB_STATE_PREPARING && have_prep) {
        // Throttled, but each tenth and each state change is drawn at once.
        const int tenth = PreparationDecile(prep) + (prep.test_set() ? 11 : 0);
        line.Draw(FormatPreparation(prep, name),
                  e.kind_case() != v1::JobEvent::kPreparation || tenth != drawn_tenth);
        drawn_tenth = tenth;
      } else if (job.state() == v1::JOB_STATE_QUEUED || job.state() == v1::JOB_STATE_PREPARING) {
        line.Draw(absl::StrCat("job ", job_id, " ", JobStateName(job.state()),
                               ": waiting to prepare ", name),
                  e.kind_case() == v1::JobEvent::kJobState);
      }
      ended = job.state() != v1::JOB_STATE_QUEUED && job.state() != v1::JOB_STATE_PREPARING &&
              job.state() != v1::JOB_STATE_UNSPECIFIED;
    }
    if (ended) ctx.TryCancel();
    grpc::Status s = reader->Finish();
    if (ended) break;
    const bool broken = s.ok() || s.error_code() == grpc::StatusCode::UNAVAILABLE ||
                        s.error_code() == grpc::StatusCode::INTERNAL ||
                        s.error_code() == grpc::StatusCode::UNKNOWN;
    if (!broken || n >= retry_.submit_attempts) {
      line.Finish("");
      return ReportRpcError(
          s.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream ended") : s,
          "watch " + job_id, global_, err_);
    }
    Pause(n);
  }
  if (job.state() == v1::JOB_STATE_FAILED || job.state() == v1::JOB_STATE_CANCELLED) {
    line.Finish("");
    err_ << "nanonas: job " << job_id << " " << JobStateName(job.state())
         << (job.error().empty() ? "" : ": " + job.error()) << "\n";
    return kExitJobFailed;
  }
  line.Finish(have_prep ? FormatPreparationSummary(prep, name)
                        : absl::StrCat("job ", job_id, " ", JobStateName(job.state())));
  return kExitOk;
}

}  // namespace nanonas
