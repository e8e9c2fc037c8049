// The web view's JSON API over a coordinator core with the test fakes (no HTTP, no threads).
#include "server/web/json_api.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::web {
namespace {

namespace v1 = nanonas::v1;
using coordinator::testing::FakeConnector;
using coordinator::testing::GoodSpec;
using coordinator::testing::Harness;
using coordinator::testing::Hex64;
using nlohmann::json;
using ::testing::HasSubstr;

json Parse(const ApiResponse& r) { return json::parse(r.body); }

// Finishes the open candidate evaluations with `accuracy` until a final training is asked for
// (returned) or the job ends (null).
std::shared_ptr<FakeConnector::Call> RunSearch(Harness& h, const std::string& job_id) {
  for (int guard = 0; guard < 200; ++guard) {
    auto job = h.core->GetJob(job_id);
    if (!job.ok() || job->state() != v1::JOB_STATE_RUNNING) return nullptr;
    auto open = h.connector.Open();
    if (open.empty()) return nullptr;
    if (open[0]->request.final_training()) return open[0];
    // coordinator_test's table: the search returns (2, 1) after 10 candidates.
    static const std::map<std::pair<int, int>, double> kTable = {
        {{1, 0}, 0.50}, {{1, 1}, 0.60}, {{1, 2}, 0.55}, {{2, 0}, 0.62}, {{2, 1}, 0.70},
        {{2, 2}, 0.70}, {{3, 0}, 0.65}, {{3, 1}, 0.68}, {{3, 2}, 0.69}, {{3, 3}, 0.66}};
    const auto& req = open[0]->request;
    auto it = kTable.find({req.k(), req.c()});
    FakeConnector::Complete(open[0], it == kTable.end() ? 0.3 : it->second);
  }
  return nullptr;
}

TEST(WebApiTest, JobsAreSummarisedNewestFirstAndFilteredByState) {
  Harness h;
  WebApi api(h.core.get(), nullptr);
  v1::JobSpec first = GoodSpec();
  first.set_name("<b>first</b>");
  auto a = h.core->SubmitJob(first);
  h.now += absl::Seconds(1);
  auto b = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(h.core->CancelJob(a->id()).ok());

  ApiResponse all = api.Get("/api/v1/jobs", {});
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.content_type, "application/json");
  json jobs = Parse(all)["jobs"];
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0]["id"], b->id()) << "newest first";
  EXPECT_EQ(jobs[1]["name"], "<b>first</b>") << "names are data, passed through as JSON strings";
  EXPECT_EQ(jobs[1]["state"], "JOB_STATE_CANCELLED");
  EXPECT_EQ(jobs[0]["dataset_id"], "sha256:" + Hex64('a'));
  EXPECT_EQ(jobs[0]["target"]["ram_bytes"], 1'000'000);

  for (const char* spelling : {"cancelled", "CANCELLED", "JOB_STATE_CANCELLED"}) {
    json only = Parse(api.Get("/api/v1/jobs", {{"state", spelling}}))["jobs"];
    ASSERT_EQ(only.size(), 1u) << spelling;
    EXPECT_EQ(only[0]["id"], a->id());
  }
  EXPECT_EQ(Parse(api.Get("/api/v1/jobs", {{"state", "queued,running"}}))["jobs"].size(), 1u);
  EXPECT_EQ(Parse(api.Get("/api/v1/jobs", {{"limit", "1"}}))["jobs"].size(), 1u);
}

TEST(WebApiTest, BadParametersAre400WithAJsonError) {
  Harness h;
  WebApi api(h.core.get(), nullptr);
  for (const auto& params : std::vector<std::map<std::string, std::string>>{
           {{"state", "sleeping"}}, {{"limit", "-1"}}, {{"limit", "ten"}}}) {
    ApiResponse r = api.Get("/api/v1/jobs", params);
    EXPECT_EQ(r.status, 400) << params.begin()->second;
    EXPECT_EQ(Parse(r)["error"]["code"], "INVALID_ARGUMENT");
    EXPECT_THAT(Parse(r)["error"]["message"].get<std::string>(), HasSubstr(params.begin()->second));
  }
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(api.Get("/api/v1/jobs/" + job->id() + "/events", {{"wait_ms", "soon"}}).status, 400);
  EXPECT_EQ(api.Get("/api/v1/jobs/" + job->id() + "/artifacts/..", {}).status, 400);
}

TEST(WebApiTest, UnknownJobsAndRoutesAre404) {
  Harness h;
  WebApi api(h.core.get(), nullptr);
  for (const char* path :
       {"/api/v1/jobs/nope", "/api/v1/jobs/nope/events", "/api/v1/jobs/nope/artifacts",
        "/api/v1/jobs/nope/artifacts/model.tflite", "/api/v1/nothing", "/api/v2/jobs"}) {
    ApiResponse r = api.Get(path, {});
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(Parse(r)["error"]["code"], "NOT_FOUND") << path;
  }
  EXPECT_THAT(Parse(api.Get("/api/v1/jobs/nope", {}))["error"]["message"].get<std::string>(),
              HasSubstr("nope"));
}

TEST(WebApiTest, AJobIsTheWholeJobMessageAsProtobufJson) {
  Harness h;
  h.AddWorker("w1");
  WebApi api(h.core.get(), nullptr);
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  RunSearch(h, job->id());
  ApiResponse r = api.Get("/api/v1/jobs/" + job->id(), {});
  ASSERT_EQ(r.status, 200) << r.body;
  v1::Job parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.body, &parsed).ok());
  auto direct = h.core->GetJob(job->id());
  ASSERT_TRUE(direct.ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(parsed, *direct));
  json j = Parse(r);
  EXPECT_EQ(j["state"], "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(j["candidates"][0]["c"], 0) << "zero fields are printed (proto field names)";
  EXPECT_TRUE(j["candidates"][0].contains("best_validation_accuracy"));
}

TEST(WebApiTest, EventsLongPollStartsWithASnapshotThenWaitsForNews) {
  Harness h;
  h.AddWorker("w1");
  WebApi api(h.core.get(), nullptr, WebApiOptions{absl::Milliseconds(200)});
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  h.core->Tick();
  const std::string path = "/api/v1/jobs/" + job->id() + "/events";
  json first = Parse(api.Get(path, {}));
  ASSERT_EQ(first["events"].size(), 1u);
  EXPECT_EQ(first["events"][0]["job"]["id"], job->id()) << "the snapshot";
  EXPECT_FALSE(first["ended"]);
  auto cursor = [](const json& j) {
    return std::map<std::string, std::string>{
        {"sequence", std::to_string(j["sequence"].get<int64_t>())},
        {"progress", std::to_string(j["progress"].get<uint64_t>())},
        {"wait_ms", "100"}};
  };
  const absl::Time before = absl::Now();
  json idle = Parse(api.Get(path, cursor(first)));
  EXPECT_TRUE(idle["events"].empty());
  EXPECT_GE(absl::Now() - before, absl::Milliseconds(90)) << "it waited";
  EXPECT_EQ(idle["sequence"], first["sequence"]);

  FakeConnector::Complete(h.connector.Open()[0], 0.5);
  json news = Parse(api.Get(path, cursor(idle)));
  ASSERT_FALSE(news["events"].empty());
  bool finished_candidate = false;
  for (const json& e : news["events"]) {
    finished_candidate |= e.contains("candidate") && e["candidate"]["k"] == 1 &&
                          e["candidate"]["state"] == "CANDIDATE_STATE_DONE";
  }
  EXPECT_TRUE(finished_candidate) << news.dump();
  EXPECT_GT(news["sequence"].get<int64_t>(), first["sequence"].get<int64_t>());

  ASSERT_TRUE(h.core->CancelJob(job->id()).ok());
  json last = Parse(api.Get(path, cursor(news)));
  EXPECT_TRUE(last["ended"]);
}

TEST(WebApiTest, StopEndsALongPollEarly) {
  Harness h;
  WebApi api(h.core.get(), nullptr, WebApiOptions{absl::Seconds(30), absl::Milliseconds(20)});
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  json first = Parse(api.Get("/api/v1/jobs/" + job->id() + "/events", {}));
  api.Stop();
  const absl::Time before = absl::Now();
  ApiResponse r = api.Get(
      "/api/v1/jobs/" + job->id() + "/events",
      {{"sequence", std::to_string(first["sequence"].get<int64_t>())}, {"wait_ms", "30000"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
}

TEST(WebApiTest, ArtifactsAreListedAndDownloadedInChunks) {
  Harness h;
  h.AddWorker("w1");
  WebApiOptions options;
  options.chunk_bytes = 100;
  WebApi api(h.core.get(), nullptr, options);
  v1::JobSpec spec = GoodSpec();
  spec.mutable_final_training()->set_skip(false);
  auto job = h.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok());
  auto final_call = RunSearch(h, job->id());
  ASSERT_NE(final_call, nullptr);
  EXPECT_TRUE(Parse(api.Get("/api/v1/jobs/" + job->id() + "/artifacts", {}))["artifacts"].empty());
  EXPECT_EQ(api.Get("/api/v1/jobs/" + job->id() + "/artifacts/model.tflite", {}).status, 404);
  FakeConnector::CompleteFinal(final_call, 1000, false);

  json listed = Parse(api.Get("/api/v1/jobs/" + job->id() + "/artifacts", {}))["artifacts"];
  ASSERT_EQ(listed.size(), 4u);
  std::map<std::string, std::string> types;
  for (const json& a : listed) {
    const std::string name = a["name"];
    ApiResponse r = api.Get("/api/v1/jobs/" + job->id() + "/artifacts/" + name, {});
    ASSERT_EQ(r.status, 200) << name << ": " << r.body;
    ASSERT_TRUE(r.stream.has_value()) << name;
    types[name] = r.content_type;
    EXPECT_EQ(std::to_string(r.stream->size), a["size_bytes"].get<std::string>()) << name;
    std::string got;
    while (static_cast<int64_t>(got.size()) < r.stream->size) {
      auto chunk = r.stream->read(static_cast<int64_t>(got.size()), 1 << 20);
      ASSERT_TRUE(chunk.ok()) << chunk.status();
      ASSERT_FALSE(chunk->empty());
      EXPECT_LE(chunk->size(), 100u) << "chunks of chunk_bytes";
      got += *chunk;
    }
    auto whole = h.core->ReadArtifact(job->id(), name, 0, 1 << 30);
    ASSERT_TRUE(whole.ok());
    EXPECT_EQ(got, *whole) << name;
    bool disposition = false;
    for (const auto& [k, v] : r.headers) {
      disposition |= k == "Content-Disposition" && v == "attachment; filename=\"" + name + "\"";
    }
    EXPECT_TRUE(disposition) << name;
  }
  EXPECT_EQ(types["model.tflite"], "application/octet-stream");
  EXPECT_EQ(types["report.json"], "application/json");
  EXPECT_EQ(types["search-path.svg"], "image/svg+xml");
  EXPECT_EQ(types["model.h"], "text/plain; charset=utf-8");
  ApiResponse missing = api.Get("/api/v1/jobs/" + job->id() + "/artifacts/weights.bin", {});
  EXPECT_EQ(missing.status, 404);
  EXPECT_THAT(Parse(missing)["error"]["message"].get<std::string>(), HasSubstr("model.tflite"));
}

TEST(WebApiTest, WorkersShowSlotsHeartbeatsAndTheirEvaluations) {
  Harness h;
  h.AddWorker("w1", 2);
  WebApi api(h.core.get(), nullptr);
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  h.core->Tick();
  h.now += absl::Seconds(2);
  json workers = Parse(api.Get("/api/v1/workers", {}))["workers"];
  ASSERT_EQ(workers.size(), 1u);
  const json& w = workers[0];
  EXPECT_EQ(w["id"], "w1");
  EXPECT_EQ(w["slots"], 2);
  EXPECT_EQ(w["running"], 1);
  EXPECT_EQ(w["used_slots"], 1) << "the slots its evaluations take";
  EXPECT_EQ(w["memory_budget_bytes"], int64_t{1} << 30);
  EXPECT_DOUBLE_EQ(w["seconds_since_heartbeat"].get<double>(), 2.0);
  EXPECT_EQ(w["last_heartbeat"], "2023-11-14T22:13:20Z");
  ASSERT_EQ(w["evaluations"].size(), 1u);
  EXPECT_EQ(w["evaluations"][0]["job_id"], job->id());
  EXPECT_EQ(w["evaluations"][0]["k"], 1);
  EXPECT_DOUBLE_EQ(w["evaluations"][0]["seconds"].get<double>(), 2.0);
}

TEST(WebApiTest, DatasetsListSizeClassesAndTheJobsUsingThem) {
  Harness h;
  const std::filesystem::path dir = h.artifact_dir + "-datasets";
  coordinator::DatasetRegistryOptions options;
  options.state_dir = dir.string();
  coordinator::DatasetRegistry registry(options);
  ASSERT_TRUE(registry.Init().ok());
  // A dataset record as an upload leaves it (dataset_registry.h's layout), with the id the
  // harness's decoder knows.
  v1::DatasetInfo info;
  info.set_id("sha256:" + Hex64('a'));
  info.set_size_bytes(4096);
  info.set_source("upload");
  info.set_num_images(300);
  info.add_class_names("horizontal");
  info.add_class_names("vertical");
  std::ofstream(dir / "datasets" / (Hex64('a') + ".info"), std::ios::binary)
      << info.SerializeAsString();
  WebApi api(h.core.get(), &registry);
  v1::JobSpec spec = GoodSpec();
  spec.set_test_dataset_id("sha256:" + Hex64('b'));
  auto job = h.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();

  json datasets = Parse(api.Get("/api/v1/datasets", {}))["datasets"];
  std::filesystem::remove_all(dir);
  ASSERT_EQ(datasets.size(), 1u);
  const json& d = datasets[0];
  EXPECT_EQ(d["id"], info.id());
  EXPECT_EQ(d["size_bytes"], 4096);
  EXPECT_EQ(d["num_images"], 300);
  EXPECT_EQ(d["class_names"], json({"horizontal", "vertical"}));
  ASSERT_EQ(d["jobs"].size(), 1u);
  EXPECT_EQ(d["jobs"][0]["id"], job->id());
  EXPECT_EQ(d["jobs"][0]["role"], "train");
  EXPECT_EQ(d["jobs"][0]["name"], "stripes");
}

TEST(WebApiTest, APreparingJobShowsItsProgressInTheListTheJobAndItsEvents) {
  Harness h;
  h.preparer.hold = true;
  WebApi api(h.core.get(), nullptr);
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  const std::string events_path = "/api/v1/jobs/" + job->id() + "/events";
  json start = Parse(api.Get(events_path, {}));
  coordinator::testing::FakePreparer::Report(h.preparer.calls[0], "sha256:" + Hex64('a'), 0, 300);
  coordinator::testing::FakePreparer::Report(h.preparer.calls[0], "sha256:" + Hex64('a'), 300, 300);

  json list = Parse(api.Get("/api/v1/jobs", {{"state", "preparing"}}))["jobs"];
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["phase"], "preparing");
  EXPECT_EQ(list[0]["preparation"]["images_done"], 300);
  EXPECT_EQ(list[0]["preparation"]["images_total"], 300);
  json whole = Parse(api.Get("/api/v1/jobs/" + job->id(), {}));
  EXPECT_EQ(whole["state"], "JOB_STATE_PREPARING");
  EXPECT_EQ(whole["preparation"]["images_done"], "300") << "proto JSON: int64 as a string";
  json events = Parse(api.Get(events_path, {{"sequence", start["sequence"].dump()},
                                            {"progress", start["progress"].dump()}}));
  bool seen = false;
  for (const auto& e : events["events"]) seen |= e.contains("preparation");
  EXPECT_TRUE(seen) << events.dump();
  h.preparer.Finish(h.preparer.calls[0]);
}

}  // namespace
}  // namespace nanonas::web
