// `nanonas` command-line parsing, board presets and exit codes, the last against an in-process
// fake coordinator.
#include "client/cli.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/commands.h"
#include "client/health.h"
#include "client/targets.h"
#include "common/base/sha256.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

using testing::HasSubstr;
namespace v1 = nanonas::v1;

absl::StatusOr<Command> Parse(std::vector<std::string> args, const char* env = nullptr) {
  return ParseCommandLine(args, env);
}

TEST(CliParseTest, SubmitTakesHumanUnits) {
  auto c = Parse({"submit",    "data",  "--ram",         "40KiB",  "--flash",     "128KiB",
                  "--macc",    "2.73M", "--host-memory", "512MiB", "--input",     "28x28x1",
                  "--epochs",  "2",     "--seed",        "7",      "--val-split", "0.25",
                  "--variant", "2024",  "--name",        "demo",   "--json"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kind, Command::Kind::kSubmit);
  EXPECT_EQ(c->dataset_dir, "data");
  EXPECT_TRUE(c->global.json);
  const auto& s = c->spec;
  EXPECT_EQ(s.constraints().ram_bytes(), 40960);
  EXPECT_EQ(s.constraints().flash_bytes(), 131072);
  EXPECT_EQ(s.constraints().macc(), 2730000);
  EXPECT_EQ(s.constraints().host_memory_bytes(), 512LL << 20);
  EXPECT_EQ(s.input().height(), 28);
  EXPECT_EQ(s.input().channels(), 1);
  EXPECT_EQ(s.evaluation().epochs(), 2);
  EXPECT_EQ(s.evaluation().seed(), 7u);
  EXPECT_EQ(s.evaluation().batch_size(), 16);
  EXPECT_DOUBLE_EQ(s.validation_split(), 0.25);
  EXPECT_EQ(s.variant(), "2024");
  EXPECT_EQ(s.name(), "demo");
}

TEST(CliParseTest, SubmitDefaultsFollowNanoNas) {
  auto c = Parse({"submit", "d", "--ram", "20KiB"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->spec.input().height(), 50);
  EXPECT_EQ(c->spec.input().channels(), 3);
  EXPECT_DOUBLE_EQ(c->spec.validation_split(), 0.3);
  EXPECT_EQ(c->spec.evaluation().epochs(), 3);
  EXPECT_FLOAT_EQ(c->spec.evaluation().learning_rate(), 0.001f);
  EXPECT_EQ(c->spec.variant(), "2023");
  EXPECT_EQ(c->spec.final_training().epochs(), 100);
}

TEST(CliParseTest, TargetPresetsFillLimitsAndExplicitFlagsWin) {
  auto c = Parse({"submit", "d", "--ram", "30KiB", "--target", "nucleo-l412kb"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->spec.constraints().ram_bytes(), 30 * 1024);  // explicit flag overrides the preset
  EXPECT_EQ(c->spec.constraints().flash_bytes(), 128 * 1024);
  EXPECT_EQ(c->spec.constraints().macc(), 2730000);
  EXPECT_EQ(c->spec.constraints().target(), "NUCLEO-L412KB");
}

TEST(CliTargetsTest, EveryBoardOfThePapersHasAPreset) {
  for (const char* name : {"NUCLEO-L010RB", "NUCLEO-L412KB", "STM32L151UC", "Arduino Nano 33 IoT",
                           "STM32F412", "STM32F446RE"}) {
    const BoardPreset* b = FindBoard(name);
    ASSERT_NE(b, nullptr) << name;
    EXPECT_GT(b->ram_bytes, 0);
    EXPECT_GT(b->flash_bytes, b->ram_bytes);
    EXPECT_EQ(b->macc(), b->coremark * 10000LL);
  }
  const BoardPreset* l010 = FindBoard("nucleo_l010rb");
  EXPECT_EQ(l010->ram_bytes, 20480);
  EXPECT_EQ(l010->flash_bytes, 131072);
  EXPECT_EQ(l010->macc(), 750000);
  EXPECT_EQ(FindBoard("esp32"), nullptr);
}

TEST(CliParseTest, ErrorsSayWhatToFix) {
  struct Case {
    std::vector<std::string> args;
    std::string needle;
  } cases[] = {
      {{}, "no command"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"submit", "d"}, "--target BOARD"},
      {{"submit", "d", "--ram", "lots"}, "--ram"},
      {{"submit", "d", "--ram", "0"}, "--ram"},
      {{"submit", "d", "--ram", "1KiB", "--input", "0x0x3"}, "--input"},
      {{"submit", "d", "--ram", "1KiB", "--val-split", "1.5"}, "--val-split"},
      {{"submit", "d", "--ram", "1KiB", "--variant", "1999"}, "--variant"},
      {{"submit", "d", "--target", "esp32"}, "known: NUCLEO-L010RB"},
      {{"submit", "d", "--ram", "1KiB", "--bogus", "1"}, "no flag --bogus"},
      {{"submit"}, "DATASET_DIR"},
      {{"get"}, "one JOB id"},
      {{"list", "--state", "sleeping"}, "not a job state"},
      {{"--server", "nocolon", "list"}, "HOST:PORT"},
      {{"submit", "d", "--ram"}, "needs a value"},
  };
  for (const auto& c : cases) {
    auto r = Parse(c.args);
    ASSERT_FALSE(r.ok()) << testing::PrintToString(c.args);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.needle))
        << testing::PrintToString(c.args);
  }
}

TEST(CliParseTest, ServerComesFromFlagThenEnvironmentThenDefault) {
  EXPECT_EQ(Parse({"list"})->global.server, "localhost:50051");
  EXPECT_EQ(Parse({"list"}, "coord:7000")->global.server, "coord:7000");
  EXPECT_EQ(Parse({"list", "--server", "h:1"}, "coord:7000")->global.server, "h:1");
  auto l = Parse({"list", "--state", "running,QUEUED", "--limit", "5"});
  ASSERT_TRUE(l.ok());
  EXPECT_THAT(l->states, testing::ElementsAre(v1::JOB_STATE_RUNNING, v1::JOB_STATE_QUEUED));
  EXPECT_EQ(l->limit, 5);
  EXPECT_EQ(Parse({"--help"})->kind, Command::Kind::kHelp);
  EXPECT_THAT(Usage(), HasSubstr("4  no such job"));
}

TEST(CliParseTest, HelpListsEveryFlagTheParserAccepts) {
  const std::vector<std::string> flags = CommandLineFlags();
  EXPECT_GT(flags.size(), 20u);
  for (const std::string& flag : flags) EXPECT_THAT(Usage(), HasSubstr(flag)) << flag;
  EXPECT_EQ(Parse({"list", "-h"})->kind, Command::Kind::kHelp);
  EXPECT_EQ(Parse({"help"})->kind, Command::Kind::kHelp);
}

TEST(CliParseTest, FlagsTakeValuesEitherWayAndGlobalsGoAnywhere) {
  auto c = Parse({"--json", "submit", "d", "--ram=40KiB", "--epochs", "2", "--timeout=3",
                  "--server", "h:9", "--skip-final", "--watch"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->spec.constraints().ram_bytes(), 40960);
  EXPECT_EQ(c->spec.evaluation().epochs(), 2);
  EXPECT_TRUE(c->spec.final_training().skip());
  EXPECT_TRUE(c->watch);
  EXPECT_TRUE(c->global.json);
  EXPECT_DOUBLE_EQ(c->global.timeout_seconds, 3);
  EXPECT_EQ(c->global.server, "h:9");
  auto l = Parse({"list", "--state", "running", "--state=failed"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_THAT(l->states, testing::ElementsAre(v1::JOB_STATE_RUNNING, v1::JOB_STATE_FAILED));
  EXPECT_THAT(std::string(Parse({"list", "extra"}).status().message()),
              HasSubstr("takes no argument"));
  EXPECT_THAT(std::string(Parse({"get", "j", "--out", ""}).status().message()),
              HasSubstr("--out: give a folder"));
  EXPECT_THAT(std::string(Parse({"get", "j", "--out="}).status().message()),
              HasSubstr("--out needs a value"));
}

TEST(CliRenderTest, ProgressBarAndJobTable) {
  EXPECT_EQ(ProgressBar(0.5, 10), "[#####-----]  50%");
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  auto* c = job.add_candidates();
  c->set_k(1);
  c->set_c(2);
  c->set_state(v1::CANDIDATE_STATE_DONE);
  c->set_best_validation_accuracy(0.8125);
  auto* bad = job.add_candidates();
  bad->set_sequence(1);
  bad->set_k(1);
  bad->set_c(3);
  bad->set_state(v1::CANDIDATE_STATE_INFEASIBLE);
  auto* v = bad->add_violations();
  v->set_resource("ram_bytes");
  v->set_value(50000);
  v->set_limit(40960);
  v->set_excess(9040);
  job.mutable_result()->set_found(true);
  job.mutable_result()->set_k(1);
  job.mutable_result()->set_c(2);
  job.mutable_result()->set_validation_accuracy(0.8125);
  std::string text = RenderJob(job, nullptr);
  EXPECT_THAT(text, HasSubstr("0.8125"));
  EXPECT_THAT(text, HasSubstr("INFEASIBLE"));
  EXPECT_THAT(text, HasSubstr("ram_bytes 50000 > 40960 by 9040"));
  EXPECT_THAT(text, HasSubstr("result: k=1 c=2"));
}

TEST(CliRenderTest, GetShowsAPreparingJobsProgressAndListAcceptsTheState) {
  v1::Job job;
  job.set_id("job-1");
  job.set_state(v1::JOB_STATE_PREPARING);
  job.mutable_preparation()->set_images_done(500);
  job.mutable_preparation()->set_images_total(2000);
  const std::string text = RenderJob(job, nullptr);
  EXPECT_THAT(text, HasSubstr("job job-1  PREPARING"));
  EXPECT_THAT(text, HasSubstr("preparing the dataset: 500/2,000 images (25%)"));
  auto l = Parse({"list", "--state", "preparing"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_THAT(l->states, testing::ElementsAre(v1::JOB_STATE_PREPARING));
}

// ------------------------------------------------------------------------------------------
// Against a fake coordinator.

class FakeCoordinator final : public v1::Coordinator::Service {
 public:
  grpc::Status UploadDataset(grpc::ServerContext*, grpc::ServerReader<v1::UploadDatasetRequest>* r,
                             v1::DatasetInfo* info) override {
    v1::UploadDatasetRequest req;
    std::string bytes;
    v1::UploadHeader header;
    while (r->Read(&req)) {
      if (req.has_header()) header = req.header();
      bytes += req.chunk();
    }
    std::lock_guard<std::mutex> lock(mu);
    upload_header = header;
    upload_bytes = bytes;
    if (static_cast<int64_t>(bytes.size()) != header.size_bytes()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "size mismatch");
    }
    info->set_id("sha256:" + std::string(64, 'a'));
    info->set_num_images(3);
    info->add_class_names("cats");
    info->add_class_names("dogs");
    return grpc::Status::OK;
  }
  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* req,
                         v1::SubmitJobResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    submitted = req->spec();
    if (req->spec().constraints().ram_bytes() == 12345) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "ram_bytes is silly");
    }
    resp->set_job_id("job-1");
    return grpc::Status::OK;
  }
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* req, v1::Job* job) override {
    if (req->job_id() == "job-5" || req->job_id() == "job-6") {
      // job-5: artifacts whose recorded SHA-256 is wrong; job-6: still running, none yet.
      *job = Finished(req->job_id() == "job-5" ? v1::JOB_STATE_SUCCEEDED : v1::JOB_STATE_RUNNING);
      if (req->job_id() == "job-5") {
        auto* a = job->add_artifacts();
        a->set_name("model.tflite");
        a->set_size_bytes(static_cast<int64_t>(Model().size()));
        a->set_sha256(std::string(64, '0'));
      }
      return grpc::Status::OK;
    }
    if (req->job_id() != "job-1") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "job '" + req->job_id() + "' is unknown");
    }
    *job = Finished(v1::JOB_STATE_SUCCEEDED);
    for (const auto& [name, bytes] : {std::make_pair(std::string("model.tflite"), Model()),
                                      std::make_pair(std::string("report.json"), Report())}) {
      auto* a = job->add_artifacts();
      a->set_name(name);
      a->set_size_bytes(static_cast<int64_t>(bytes.size()));
      a->set_sha256(Sha256Hex(bytes));
    }
    return grpc::Status::OK;
  }
  static std::string Model() {
    std::string m(3000, '\0');
    for (size_t i = 0; i < m.size(); ++i) m[i] = static_cast<char>(i * 13);
    return m;
  }
  static std::string Report() { return "{\"job\": {\"id\": \"job-1\"}}\n"; }
  // Sends the artifact in 1000-byte chunks.
  grpc::Status DownloadArtifact(grpc::ServerContext*, const v1::DownloadArtifactRequest* req,
                                grpc::ServerWriter<v1::ArtifactChunk>* w) override {
    std::string bytes;
    if (req->name() == "model.tflite") bytes = Model();
    if (req->name() == "report.json") bytes = Report();
    if (bytes.empty()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such artifact");
    for (size_t off = 0; off < bytes.size(); off += 1000) {
      v1::ArtifactChunk c;
      c.set_data(bytes.substr(off, 1000));
      w->Write(c);
    }
    return grpc::Status::OK;
  }
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    list_states.assign(req->states().begin(), req->states().end());
    *resp->add_jobs() = Finished(v1::JOB_STATE_SUCCEEDED);
    return grpc::Status::OK;
  }
  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest* req,
                         v1::CancelJobResponse* resp) override {
    if (req->job_id() != "job-1") return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown job");
    resp->mutable_job()->set_state(v1::JOB_STATE_CANCELLED);
    return grpc::Status::OK;
  }
  // job-1 succeeds, job-2 fails; the first watch of job-1 breaks after two events.
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* w) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      watch_after.push_back(req->after_sequence());
    }
    if (req->job_id() != "job-1" && req->job_id() != "job-2") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown job");
    }
    v1::JobEvent e;
    if (req->after_sequence() == 0) {
      e.set_sequence(1);
      *e.mutable_job() = Finished(v1::JOB_STATE_RUNNING);
      e.mutable_job()->clear_candidates();
      e.mutable_job()->clear_result();
      e.set_job_state(v1::JOB_STATE_RUNNING);
      w->Write(e);
      e.Clear();
      e.set_sequence(2);
      e.mutable_candidate()->set_k(1);
      e.mutable_candidate()->set_state(v1::CANDIDATE_STATE_RUNNING);
      w->Write(e);
      e.Clear();
      e.mutable_progress()->set_k(1);
      e.mutable_progress()->set_epoch(1);
      e.mutable_progress()->set_epochs(3);
      e.mutable_progress()->set_batch(5);
      e.mutable_progress()->set_batches_per_epoch(10);
      w->Write(e);
      if (req->job_id() == "job-1") {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator restarting");
      }
    }
    bool ok = req->job_id() == "job-1";
    e.Clear();
    e.set_sequence(3);
    *e.mutable_candidate() = Finished(v1::JOB_STATE_SUCCEEDED).candidates(0);
    w->Write(e);
    e.Clear();
    e.set_sequence(4);
    e.set_job_state(ok ? v1::JOB_STATE_SUCCEEDED : v1::JOB_STATE_FAILED);
    *e.mutable_job() = Finished(ok ? v1::JOB_STATE_SUCCEEDED : v1::JOB_STATE_FAILED);
    w->Write(e);
    return grpc::Status::OK;
  }

  static v1::Job Finished(v1::JobState state) {
    v1::Job job;
    job.set_id("job-1");
    job.set_state(state);
    auto* c = job.add_candidates();
    c->set_k(1);
    c->set_c(0);
    c->set_state(v1::CANDIDATE_STATE_DONE);
    c->set_best_validation_accuracy(0.75);
    job.mutable_result()->set_found(true);
    job.mutable_result()->set_k(1);
    job.mutable_result()->set_validation_accuracy(0.75);
    job.mutable_result()->set_stop_reason("k=2 did not improve on k=1");
    return job;
  }

  std::mutex mu;
  v1::UploadHeader upload_header;
  std::string upload_bytes;
  v1::JobSpec submitted;
  std::vector<int> list_states;
  std::vector<int64_t> watch_after;
};

class CliServerTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&fake_);
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_);
    dir_ =
        std::filesystem::temp_directory_path() / ("nanonas-cli-test-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "cats");
    std::filesystem::create_directories(dir_ / "dogs");
    std::ofstream(dir_ / "cats" / "a.png") << "not really a png";
    std::ofstream(dir_ / "cats" / "b.png") << "bbb";
    std::ofstream(dir_ / "dogs" / "c.png") << "ccc";
  }
  void TearDown() override {
    server_->Shutdown();
    std::filesystem::remove_all(dir_);
  }

  int Run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    auto cmd = ParseCommandLine(args, ("127.0.0.1:" + std::to_string(port_)).c_str());
    if (!cmd.ok()) {
      err_ << cmd.status().message();
      return kExitUsage;
    }
    auto stub = v1::Coordinator::NewStub(
        grpc::CreateChannel(cmd->global.server, grpc::InsecureChannelCredentials()));
    Cli cli(std::move(stub), cmd->global, out_, err_, false);
    return cli.Run(*cmd);
  }

  FakeCoordinator fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::filesystem::path dir_;
  std::ostringstream out_, err_;
};

TEST_F(CliServerTest, SubmitUploadsATarAndPrintsTheJobIdAsJson) {
  ASSERT_EQ(Run({"submit", dir_.string(), "--target", "NUCLEO-L010RB", "--json"}), kExitOk)
      << err_.str();
  EXPECT_EQ(out_.str(), "{\"job_id\": \"job-1\"}\n");
  std::lock_guard<std::mutex> lock(fake_.mu);
  EXPECT_EQ(fake_.upload_header.format(), "tar");
  // Streamed: the exact archive size is announced, the digest is left to the server.
  EXPECT_EQ(fake_.upload_header.size_bytes(), static_cast<int64_t>(fake_.upload_bytes.size()));
  EXPECT_TRUE(fake_.upload_header.sha256().empty());
  EXPECT_THAT(fake_.upload_bytes, HasSubstr("cats/a.png"));
  EXPECT_THAT(fake_.upload_bytes, HasSubstr("dogs/c.png"));
  EXPECT_THAT(fake_.upload_bytes, HasSubstr("not really a png"));
  EXPECT_EQ(fake_.submitted.dataset_id(), "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(fake_.submitted.constraints().ram_bytes(), 20480);
  EXPECT_EQ(fake_.submitted.constraints().macc(), 750000);
}

TEST_F(CliServerTest, ExitCodesScriptsCanRelyOn) {
  EXPECT_EQ(Run({"get", "job-1"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("result: k=1 c=0"));
  EXPECT_EQ(Run({"get", "job-9"}), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("job 'job-9' is unknown"));
  EXPECT_EQ(Run({"cancel", "job-9"}), kExitNotFound);
  EXPECT_EQ(Run({"submit", (dir_ / "missing").string(), "--ram", "1KiB"}), kExitNotFound);
  EXPECT_EQ(Run({"submit", dir_.string(), "--ram", "12345"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("rejected by the server: ram_bytes is silly"));
  EXPECT_EQ(Run({"submit", dir_.string()}), kExitUsage);
  EXPECT_EQ(Run({"--server", "127.0.0.1:1", "list"}), kExitServer);
  EXPECT_THAT(err_.str(), HasSubstr("cannot reach the coordinator at 127.0.0.1:1"));
}

TEST_F(CliServerTest, GetOutDownloadsTheArtifactsAndPrintsTheirPaths) {
  const std::filesystem::path out = dir_ / "artifacts";
  ASSERT_EQ(Run({"get", "job-1", "--out", out.string()}), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr((out / "model.tflite").string()));
  EXPECT_THAT(out_.str(), HasSubstr((out / "report.json").string()));
  std::ifstream model(out / "model.tflite", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(model)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, FakeCoordinator::Model());
  std::ifstream report(out / "report.json");
  std::string json((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  EXPECT_EQ(json, FakeCoordinator::Report());
  ASSERT_EQ(Run({"--json", "get", "job-1", "--out", out.string()}), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("\"files\": [\""));
  // A damaged download is detected; a job without artifacts yet says so.
  EXPECT_EQ(Run({"get", "job-5", "--out", (dir_ / "damaged").string()}), kExitServer);
  EXPECT_THAT(err_.str(), HasSubstr("damaged"));
  EXPECT_EQ(Run({"get", "job-6", "--out", (dir_ / "none").string()}), kExitNotFound);
  EXPECT_THAT(err_.str(), HasSubstr("no artifacts yet"));
  EXPECT_EQ(Run({"get", "job-9", "--out", out.string()}), kExitNotFound);
  // The flag's spelling.
  EXPECT_EQ(Parse({"get", "job-1", "--out", "d"})->out_dir, "d");
  EXPECT_EQ(Parse({"get", "job-1", "--bogus", "d"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"watch", "job-1", "--out", "d"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CliServerTest, HealthChecksTheStandardHealthService) {
  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port_), grpc::InsecureChannelCredentials());
  GlobalOptions g;
  g.server = "127.0.0.1:" + std::to_string(port_);
  EXPECT_EQ(CheckHealth(channel, "", g, out_, err_), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr(": SERVING"));
  EXPECT_EQ(CheckHealth(channel, "no.such.Service", g, out_, err_), kExitNotFound);
  g.server = "127.0.0.1:1";
  auto dead = grpc::CreateChannel(g.server, grpc::InsecureChannelCredentials());
  EXPECT_EQ(CheckHealth(dead, "", g, out_, err_), kExitServer);
  EXPECT_EQ(Parse({"health", "a", "b"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse({"health", "svc"})->health_service, "svc");
}

TEST_F(CliServerTest, GetListAndCancelSpeakJson) {
  ASSERT_EQ(Run({"get", "job-1", "--json"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("\"state\":\"JOB_STATE_SUCCEEDED\""));
  EXPECT_THAT(out_.str(), HasSubstr("\"best_validation_accuracy\":0.75"));
  ASSERT_EQ(Run({"list", "--state", "succeeded", "--json"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("\"jobs\""));
  {
    std::lock_guard<std::mutex> lock(fake_.mu);
    EXPECT_THAT(fake_.list_states, testing::ElementsAre(v1::JOB_STATE_SUCCEEDED));
  }
  ASSERT_EQ(Run({"cancel", "job-1"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("CANCELLED"));
}

TEST_F(CliServerTest, WatchResumesAfterABrokenStreamAndExitsZeroOnSuccess) {
  EXPECT_EQ(Run({"watch", "job-1"}), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("candidate #0 k=1 c=0 DONE acc 0.7500"));
  EXPECT_THAT(out_.str(), HasSubstr("result: k=1 c=0"));
  std::lock_guard<std::mutex> lock(fake_.mu);
  EXPECT_THAT(fake_.watch_after, testing::ElementsAre(0, 2));  // resumed after event 2
}

TEST_F(CliServerTest, WatchPrintsOneLinePerEventWhenStdoutIsNotATerminal) {
  ASSERT_EQ(Run({"watch", "job-1"}), kExitOk) << err_.str();
  const std::string out = out_.str();
  EXPECT_EQ(out.find('\033'), std::string::npos);  // no frames, no cursor movement
  // The log (before the blank line and the summary): job RUNNING, the candidate RUNNING, DONE
  // (the progress event prints nothing), job SUCCEEDED.
  std::vector<std::string> log = absl::StrSplit(out.substr(0, out.find("\n\n")), '\n');
  ASSERT_EQ(log.size(), 4u) << out;
  EXPECT_THAT(log[0], testing::StartsWith("job job-1 RUNNING"));
  EXPECT_EQ(log[1], "candidate #0 k=1 c=0 RUNNING");
  EXPECT_THAT(log[2], testing::StartsWith("candidate #0 k=1 c=0 DONE acc 0.7500"));
  EXPECT_THAT(log[3], testing::StartsWith("job job-1 SUCCEEDED"));
}

TEST_F(CliServerTest, WatchExitsOneWhenTheJobFails) {
  EXPECT_EQ(Run({"watch", "job-2"}), kExitJobFailed);
  EXPECT_THAT(out_.str(), HasSubstr("FAILED"));
  EXPECT_EQ(Run({"watch", "job-3"}), kExitNotFound);
  ASSERT_EQ(Run({"watch", "job-2", "--json"}), kExitJobFailed);
  EXPECT_THAT(out_.str(), HasSubstr("\"progress\""));  // one JSON event per line
}

}  // namespace
}  // namespace nanonas
