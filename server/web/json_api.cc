#include "server/web/json_api.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "server/web/job_summary.h"

namespace nanonas::web {

namespace v1 = nanonas::v1;
using nlohmann::json;

namespace {

absl::StatusOr<std::string> ProtoJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  const auto st = google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!st.ok()) return absl::InternalError(absl::StrCat("JSON of a message: ", st.ToString()));
  return out;
}

absl::StatusOr<json> ProtoJsonValue(const google::protobuf::Message& m) {
  auto text = ProtoJson(m);
  if (!text.ok()) return text.status();
  return json::parse(*text);
}

// "RUNNING" / "running" / "JOB_STATE_RUNNING" -> the enum.
absl::StatusOr<v1::JobState> ParseState(absl::string_view text) {
  std::string name = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  if (!absl::StartsWith(name, "JOB_STATE_")) name = "JOB_STATE_" + name;
  v1::JobState state;
  if (!v1::JobState_Parse(name, &state) || state == v1::JOB_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown job state '", text,
                     "' (QUEUED, PREPARING, RUNNING, SUCCEEDED, FAILED or CANCELLED)"));
  }
  return state;
}

// An optional integer parameter in [lo, hi]; `fallback` when absent.
absl::StatusOr<int64_t> IntParam(const std::map<std::string, std::string>& params,
                                 const std::string& name, int64_t lo, int64_t hi,
                                 int64_t fallback) {
  auto it = params.find(name);
  if (it == params.end() || it->second.empty()) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v < lo || v > hi) {
    return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' must be an integer in [",
                                                   lo, ", ", hi, "], not '", it->second, "'"));
  }
  return v;
}

// Artifact names are plain file names; anything else is refused before reaching the store.
bool PlainFileName(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.size() > 200) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ||
           ch == '_';
  });
}

ApiResponse JsonResponse(std::string body) {
  ApiResponse r;
  r.body = std::move(body);
  return r;
}

}  // namespace

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

ApiResponse ErrorResponse(const absl::Status& status) {
  ApiResponse r;
  r.status = HttpStatusOf(status.code());
  r.body = json{{"error",
                 {{"code", absl::StatusCodeToString(status.code())},
                  {"message", std::string(status.message())}}}}
               .dump();
  return r;
}

std::string ArtifactContentType(const std::string& name) {
  if (absl::EndsWith(name, ".json")) return "application/json";
  if (absl::EndsWith(name, ".svg")) return "image/svg+xml";
  if (absl::EndsWith(name, ".h") || absl::EndsWith(name, ".txt")) {
    return "text/plain; charset=utf-8";
  }
  return "application/octet-stream";
}

WebApi::WebApi(coordinator::Coordinator* core, coordinator::DatasetRegistry* datasets,
               WebApiOptions options)
    : core_(core), datasets_(datasets), options_(std::move(options)) {}

ApiResponse WebApi::Get(const std::string& path, const std::map<std::string, std::string>& params) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  auto text = [](absl::StatusOr<std::string> body) {
    return body.ok() ? JsonResponse(*std::move(body)) : ErrorResponse(body.status());
  };
  if (parts.size() >= 3 && parts[0] == "api" && parts[1] == "v1") {
    const std::string& what = parts[2];
    if (what == "jobs" && parts.size() == 3) return text(Jobs(params));
    if (what == "jobs" && parts.size() == 4) return text(Job(parts[3]));
    if (what == "jobs" && parts.size() == 5 && parts[4] == "events") {
      return text(Events(parts[3], params));
    }
    if (what == "jobs" && parts.size() == 5 && parts[4] == "artifacts") {
      return text(Artifacts(parts[3]));
    }
    if (what == "jobs" && parts.size() == 6 && parts[4] == "artifacts") {
      auto r = Download(parts[3], parts[5]);
      return r.ok() ? *std::move(r) : ErrorResponse(r.status());
    }
    if (what == "workers" && parts.size() == 3) return text(Workers());
    if (what == "datasets" && parts.size() == 3) return text(Datasets());
  }
  return ErrorResponse(absl::NotFoundError(absl::StrCat("no API route ", path)));
}

absl::StatusOr<std::string> WebApi::Jobs(const std::map<std::string, std::string>& params) {
  std::vector<v1::JobState> states;
  if (auto it = params.find("state"); it != params.end()) {
    for (absl::string_view s : absl::StrSplit(it->second, ',', absl::SkipWhitespace())) {
      auto state = ParseState(s);
      if (!state.ok()) return state.status();
      states.push_back(*state);
    }
  }
  auto limit = IntParam(params, "limit", 0, 1'000'000, 0);
  if (!limit.ok()) return limit.status();
  auto jobs = core_->ListJobs(states, static_cast<int>(*limit));
  if (!jobs.ok()) return jobs.status();
  const absl::Time now = core_->CurrentTime();
  json list = json::array();
  for (const v1::Job& job : *jobs) list.push_back(JobSummary(job, now));
  return json{{"jobs", std::move(list)}}.dump();
}

absl::StatusOr<std::string> WebApi::Job(const std::string& id) {
  auto job = core_->GetJob(id);
  if (!job.ok()) return job.status();
  return ProtoJson(*job);
}

absl::StatusOr<std::string> WebApi::Events(const std::string& id,
                                           const std::map<std::string, std::string>& params) {
  constexpr int64_t kMax = int64_t{1} << 62;
  auto sequence = IntParam(params, "sequence", 0, kMax, -1);
  if (!sequence.ok()) return sequence.status();
  auto progress = IntParam(params, "progress", 0, kMax, 0);
  if (!progress.ok()) return progress.status();
  auto wait_ms = IntParam(params, "wait_ms", 0, 3'600'000, 0);
  if (!wait_ms.ok()) return wait_ms.status();
  coordinator::WatchCursor cursor;
  if (*sequence >= 0) {
    cursor.sequence = *sequence;
    cursor.progress = static_cast<uint64_t>(*progress);
    cursor.started = true;
  }
  const absl::Time deadline =
      absl::Now() + std::min(absl::Milliseconds(*wait_ms), options_.max_wait);
  std::vector<v1::JobEvent> events;
  bool ended = false;
  // Waits in slices so that Stop() (server shutdown) is not held up by a long poll.
  while (true) {
    const absl::Duration slice =
        std::max(absl::ZeroDuration(), std::min(options_.wait_slice, deadline - absl::Now()));
    auto got = core_->NextEvents(id, &cursor, slice, &ended);
    if (!got.ok()) return got.status();
    for (auto& e : *got) events.push_back(std::move(e));
    if (!events.empty() || ended || stopping_ || absl::Now() >= deadline) break;
  }
  json list = json::array();
  for (const v1::JobEvent& e : events) {
    auto value = ProtoJsonValue(e);
    if (!value.ok()) return value.status();
    list.push_back(*std::move(value));
  }
  return json{{"sequence", cursor.sequence},
              {"progress", cursor.progress},
              {"ended", ended},
              {"events", std::move(list)}}
      .dump();
}

absl::StatusOr<std::string> WebApi::Artifacts(const std::string& id) {
  auto artifacts = core_->ListArtifacts(id);
  if (!artifacts.ok()) return artifacts.status();
  json list = json::array();
  for (const v1::Artifact& a : *artifacts) {
    auto value = ProtoJsonValue(a);
    if (!value.ok()) return value.status();
    list.push_back(*std::move(value));
  }
  return json{{"artifacts", std::move(list)}}.dump();
}

absl::StatusOr<ApiResponse> WebApi::Download(const std::string& id, const std::string& name) {
  if (!PlainFileName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not an artifact name (letters, digits, '.', '-', '_')"));
  }
  auto artifacts = core_->ListArtifacts(id);
  if (!artifacts.ok()) return artifacts.status();
  auto it = std::find_if(artifacts->begin(), artifacts->end(),
                         [&](const v1::Artifact& a) { return a.name() == name; });
  if (it == artifacts->end()) {
    // The coordinator's message names the artifacts the job has.
    auto read = core_->ReadArtifact(id, name, 0, 0);
    return read.ok() ? absl::NotFoundError(absl::StrCat("job ", id, " has no artifact ", name))
                     : read.status();
  }
  ApiResponse r;
  r.content_type = ArtifactContentType(name);
  r.headers.emplace_back("Content-Disposition",
                         absl::StrCat("attachment; filename=\"", name, "\""));
  if (!it->sha256().empty()) r.headers.emplace_back("X-Nanonas-Sha256", it->sha256());
  const int64_t chunk = options_.chunk_bytes;
  coordinator::Coordinator* core = core_;
  r.stream = ApiResponse::Stream{
      it->size_bytes(), [core, id, name, chunk](int64_t offset, int64_t length) {
        return core->ReadArtifact(id, name, offset, std::min(length, chunk));
      }};
  return r;
}

absl::StatusOr<std::string> WebApi::Workers() {
  const absl::Time now = core_->CurrentTime();
  json list = json::array();
  for (const coordinator::WorkerStatus& w : core_->ListWorkers()) {
    const v1::WorkerDescription& d = w.worker.desc;
    json evaluations = json::array();
    for (const auto& e : w.evaluations) {
      evaluations.push_back({{"job_id", e.job_id},
                             {"k", e.k},
                             {"c", e.c},
                             {"final_training", e.final_training},
                             {"speculative", e.speculative},
                             {"seconds", absl::ToDoubleSeconds(now - e.started)}});
    }
    list.push_back({{"id", d.id()},
                    {"address", d.address()},
                    {"cores", d.cores()},
                    {"slots", d.slots()},
                    {"running", w.worker.running},
                    {"used_slots", w.worker.used_slots},
                    {"memory_budget_bytes", d.memory_budget_bytes()},
                    {"version", d.version()},
                    {"last_heartbeat", absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", w.worker.last_seen,
                                                        absl::UTCTimeZone())},
                    {"seconds_since_heartbeat", absl::ToDoubleSeconds(now - w.worker.last_seen)},
                    {"said_busy", w.worker.said_busy},
                    {"evaluations", std::move(evaluations)}});
  }
  return json{{"workers", std::move(list)}}.dump();
}

absl::StatusOr<std::string> WebApi::Datasets() {
  std::vector<v1::DatasetInfo> infos;
  if (datasets_ != nullptr) {
    auto listed = datasets_->List();
    if (!listed.ok()) return listed.status();
    infos = *std::move(listed);
  }
  auto jobs = core_->ListJobs({}, 0);
  if (!jobs.ok()) return jobs.status();
  json list = json::array();
  for (const v1::DatasetInfo& d : infos) {
    json users = json::array();
    for (const v1::Job& job : *jobs) {
      const bool train = job.spec().dataset_id() == d.id();
      const bool test = job.spec().test_dataset_id() == d.id();
      if (!train && !test) continue;
      users.push_back({{"id", job.id()},
                       {"name", job.spec().name()},
                       {"state", v1::JobState_Name(job.state())},
                       {"role", train ? "train" : "test"}});
    }
    list.push_back(
        {{"id", d.id()},
         {"size_bytes", d.size_bytes()},
         {"source", d.source()},
         {"num_images", d.num_images()},
         {"class_names", std::vector<std::string>(d.class_names().begin(), d.class_names().end())},
         {"jobs", std::move(users)}});
  }
  return json{{"datasets", std::move(list)}}.dump();
}

}  // namespace nanonas::web
