// Loopback integration: a real nanonas-coordinator and nanonas-worker processes run real (small)
// searches on generated stripe images. Bounded timeouts everywhere; every child is killed at the
// end (Process destructors).
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/arch/architecture.h"
#include "common/arch/mcu_model.h"
#include "common/tflite/tflite_reader.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace nanonas::integration {
namespace {

namespace fs = std::filesystem;
namespace v1 = nanonas::v1;
using ::testing::HasSubstr;

constexpr int kSize = 16;  // 16x16x3 images

bool IsTerminal(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

std::chrono::system_clock::time_point Deadline(int seconds) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

// A coordinator and its workers in one scratch folder.
class Cluster {
 public:
  explicit Cluster(const std::string& name) {
    dir_ = fs::path(::testing::TempDir()) / absl::StrCat("nanonas-it-", name, "-", getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    port_ = FreePort();
    metrics_port_ = FreePort();
  }
  ~Cluster() {
    workers_.clear();
    coordinator_.reset();
    fs::remove_all(dir_);
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string metrics_address() const { return absl::StrCat("127.0.0.1:", metrics_port_); }
  fs::path dir() const { return dir_; }

  bool StartCoordinator(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {NANONAS_COORDINATOR_BIN,
                                     "--listen",
                                     address(),
                                     "--metrics-listen",
                                     metrics_address(),
                                     "--state-dir",
                                     (dir_ / "state").string(),
                                     "--data-dir",
                                     (dir_ / "data").string(),
                                     "--worker-timeout-ms",
                                     "2000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    coordinator_ = std::make_unique<Process>(argv, (dir_ / "coordinator.log").string());
    if (!WaitHealthy(address(), absl::Seconds(20))) return false;
    channel_ = grpc::CreateChannel(address(), grpc::InsecureChannelCredentials());
    stub_ = v1::Coordinator::NewStub(channel_);
    return true;
  }

  // Starts a worker and waits until the coordinator counts it.
  bool StartWorker() {
    const int i = static_cast<int>(workers_.size());
    const int port = FreePort();
    const int mport = FreePort();
    std::vector<std::string> argv = {NANONAS_WORKER_BIN,
                                     "--coordinator",
                                     address(),
                                     "--metrics-listen",
                                     absl::StrCat("127.0.0.1:", mport),
                                     "--listen",
                                     absl::StrCat("127.0.0.1:", port),
                                     "--advertise",
                                     absl::StrCat("127.0.0.1:", port),
                                     "--slots",
                                     "1",
                                     "--cache-dir",
                                     (dir_ / absl::StrCat("cache", i)).string()};
    workers_.push_back(
        std::make_unique<Process>(argv, (dir_ / absl::StrCat("worker", i, ".log")).string()));
    worker_ports_.push_back(port);
    worker_metrics_ports_.push_back(mport);
    if (!WaitHealthy(absl::StrCat("127.0.0.1:", port), absl::Seconds(20))) return false;
    return WaitWorkersAtLeast(i + 1);
  }

  bool WaitWorkersAtLeast(int n) { return WaitWorkers(n, absl::Seconds(20)); }
  bool WaitWorkers(int n, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (ConnectedWorkers() >= n) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }
  int ConnectedWorkers() {
    auto text = HttpGet(metrics_address(), "/metrics");
    if (!text.ok()) return -1;
    return static_cast<int>(MetricValue(*text, "nanonas_coordinator_workers_connected"));
  }

  // The worker process whose Describe() id is `id`, or -1.
  int WorkerIndex(const std::string& id) {
    for (size_t i = 0; i < worker_ports_.size(); ++i) {
      auto stub = v1::Worker::NewStub(grpc::CreateChannel(
          absl::StrCat("127.0.0.1:", worker_ports_[i]), grpc::InsecureChannelCredentials()));
      grpc::ClientContext ctx;
      ctx.set_deadline(Deadline(2));
      v1::WorkerDescription d;
      if (stub->Describe(&ctx, v1::DescribeRequest(), &d).ok() && d.id() == id) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }

  absl::StatusOr<v1::DatasetInfo> UploadStripes(int classes, int per_class = 100) {
    const fs::path root = dir_ / absl::StrCat("stripes", classes);
    WriteStripes(root.string(), per_class, kSize, classes, 7);
    const std::string tar = TarFolder(root.string(), "stripes");
    return Upload(stub_.get(), tar, static_cast<int64_t>(tar.size()));
  }

  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, const std::string& request_id = "") {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(60));
    v1::SubmitJobRequest req;
    *req.mutable_spec() = spec;
    req.set_request_id(request_id);
    v1::SubmitJobResponse resp;
    absl::Status st = FromGrpcStatus(stub_->SubmitJob(&ctx, req, &resp));
    if (!st.ok()) return st;
    return resp.job();
  }

  absl::StatusOr<v1::Job> Get(const std::string& id) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(10));
    v1::GetJobRequest req;
    req.set_job_id(id);
    v1::Job job;
    absl::Status st = FromGrpcStatus(stub_->GetJob(&ctx, req, &job));
    if (!st.ok()) return st;
    return job;
  }

  // Polls the job until `pred` holds; the last job seen.
  template <typename Pred>
  absl::StatusOr<v1::Job> WaitJob(const std::string& id, absl::Duration timeout, Pred pred) {
    const absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<v1::Job> job = absl::DeadlineExceededError("never polled");
    while (absl::Now() < deadline) {
      job = Get(id);
      if (job.ok() && pred(*job)) return job;
      absl::SleepFor(absl::Milliseconds(50));
    }
    if (job.ok()) {
      return absl::DeadlineExceededError(absl::StrCat("timed out; job state ",
                                                      v1::JobState_Name(job->state()), ": ",
                                                      job->DebugString().substr(0, 2000)));
    }
    return job.status();
  }
  absl::StatusOr<v1::Job> WaitEnd(const std::string& id, absl::Duration timeout) {
    return WaitJob(id, timeout, [](const v1::Job& j) { return IsTerminal(j.state()); });
  }

  std::string Logs() {
    std::string out = "---- coordinator log tail:\n";
    if (coordinator_) out += coordinator_->LogTail();
    for (size_t i = 0; i < workers_.size(); ++i) {
      absl::StrAppend(&out, "\n---- worker ", i, " log tail:\n", workers_[i]->LogTail(1500));
    }
    return out;
  }

  v1::Coordinator::Stub* stub() { return stub_.get(); }
  Process* coordinator() { return coordinator_.get(); }
  Process* worker(int i) { return workers_[i].get(); }
  int worker_metrics_port(int i) const { return worker_metrics_ports_[i]; }
  void RestartCoordinatorProcess(const std::vector<std::string>& extra = {}) {
    coordinator_.reset();
    ASSERT_TRUE(StartCoordinator(extra)) << Logs();
  }

 private:
  fs::path dir_;
  int port_ = 0, metrics_port_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> workers_;
  std::vector<int> worker_ports_, worker_metrics_ports_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

// RAM limit that rules out k >= 4 at 16x16x3 so every search is short.
int64_t RamLimit() {
  CandidateSpec spec;
  spec.k = 3;
  spec.c = 0;
  spec.input = InputShape{kSize, kSize, 3};
  spec.classes = 2;
  auto arch = BuildArchitecture(spec);
  return EstimateMcuResources(*arch).ram_bytes;
}

v1::JobSpec Spec(const std::string& dataset_id, int epochs) {
  v1::JobSpec spec;
  spec.set_name("stripes");
  spec.set_dataset_id(dataset_id);
  spec.mutable_input()->set_height(kSize);
  spec.mutable_input()->set_width(kSize);
  spec.mutable_input()->set_channels(3);
  spec.mutable_constraints()->set_ram_bytes(RamLimit());
  spec.mutable_evaluation()->set_epochs(epochs);
  spec.mutable_evaluation()->set_batch_size(16);
  spec.mutable_final_training()->set_skip(true);
  return spec;
}

// ---- One cluster (coordinator + two workers) shared by the tests that do not kill anything.
class IntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new Cluster("shared");
    ok_ = cluster_->StartCoordinator({"--max-upload-bytes", "1048576"}) &&
          cluster_->StartWorker() && cluster_->StartWorker();
    if (ok_) {
      auto info = cluster_->UploadStripes(2);
      ok_ = info.ok();
      if (ok_) dataset_ = new std::string(info->id());
    }
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(ok_) << "cluster did not start: " << cluster_->Logs(); }

  static Cluster* cluster_;
  static bool ok_;
  static std::string* dataset_;
};
Cluster* IntegrationTest::cluster_ = nullptr;
bool IntegrationTest::ok_ = false;
std::string* IntegrationTest::dataset_ = nullptr;

TEST_F(IntegrationTest, TwoWorkersRunARealSearchToTheEnd) {
  auto job = cluster_->Submit(Spec(*dataset_, 1));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED) << "answered before the dataset is prepared";
  auto done = cluster_->WaitEnd(job->id(), absl::Seconds(90));
  ASSERT_TRUE(done.ok()) << done.status() << cluster_->Logs();
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << cluster_->Logs();
  EXPECT_EQ(done->num_classes(), 2);
  EXPECT_EQ(done->num_images(), 200);
  EXPECT_TRUE(done->result().found());
  EXPECT_GE(done->result().k(), 1);
  EXPECT_GT(done->result().validation_accuracy(), 0.0);
  EXPECT_FALSE(done->result().stop_reason().empty());
  ASSERT_GE(done->candidates_size(), 2);
  int trained = 0;
  for (const auto& c : done->candidates()) {
    if (c.state() == v1::CANDIDATE_STATE_DONE) {
      ++trained;
      EXPECT_FALSE(c.worker().empty());
      EXPECT_GT(c.peak_memory_bytes(), 0);
      EXPECT_GT(c.duration_seconds(), 0);
      EXPECT_EQ(c.epochs_size(), 1);
      EXPECT_EQ(c.attempts(), 1);
    } else {
      EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_INFEASIBLE) << c.DebugString();
      EXPECT_GT(c.violations_size(), 0);
    }
  }
  EXPECT_GE(trained, 2);
  // The path ended in a state the algorithm allows: the result is on it.
  bool on_path = false;
  for (const auto& c : done->candidates()) {
    on_path |= c.k() == done->result().k() && c.c() == done->result().c();
  }
  EXPECT_TRUE(on_path);

  // A watch from the beginning replays the snapshot and ends with the job.
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(10));
  v1::WatchJobRequest wreq;
  wreq.set_job_id(job->id());
  auto reader = cluster_->stub()->WatchJob(&ctx, wreq);
  v1::JobEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.job().state(), v1::JOB_STATE_SUCCEEDED);
  while (reader->Read(&ev)) {
  }
  EXPECT_TRUE(reader->Finish().ok());
  // ... and a watch after cursor 1 replays every persisted event after it, in order.
  grpc::ClientContext ctx2;
  ctx2.set_deadline(Deadline(10));
  wreq.set_after_sequence(1);
  auto replay = cluster_->stub()->WatchJob(&ctx2, wreq);
  std::vector<int64_t> seqs;
  while (replay->Read(&ev)) {
    if (!ev.has_job() || ev.has_job_state() || ev.has_candidate()) seqs.push_back(ev.sequence());
  }
  EXPECT_TRUE(replay->Finish().ok());
  ASSERT_GE(seqs.size(), 3u);
  for (size_t i = 1; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], seqs[i - 1] + 1);
}

TEST_F(IntegrationTest, TwoJobsShareTheWorkersAndBothSucceed) {
  v1::JobSpec second = Spec(*dataset_, 2);
  second.mutable_evaluation()->set_seed(2);
  auto a = cluster_->Submit(Spec(*dataset_, 2));
  auto b = cluster_->Submit(second);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  auto done_a = cluster_->WaitEnd(a->id(), absl::Seconds(120));
  auto done_b = cluster_->WaitEnd(b->id(), absl::Seconds(120));
  ASSERT_TRUE(done_a.ok() && done_b.ok()) << cluster_->Logs();
  EXPECT_EQ(done_a->state(), v1::JOB_STATE_SUCCEEDED) << done_a->error();
  EXPECT_EQ(done_b->state(), v1::JOB_STATE_SUCCEEDED) << done_b->error();
  std::set<std::string> workers;
  for (const auto* j : {&*done_a, &*done_b}) {
    for (const auto& c : j->candidates()) {
      if (!c.worker().empty()) workers.insert(c.worker());
    }
  }
  EXPECT_EQ(workers.size(), 2u) << "both workers took part";
}

TEST_F(IntegrationTest, WatchRelaysProgressAndEndsWithTheJob) {
  auto job = cluster_->Submit(Spec(*dataset_, 40));
  ASSERT_TRUE(job.ok()) << job.status();
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(120));
  v1::WatchJobRequest req;
  req.set_job_id(job->id());
  auto reader = cluster_->stub()->WatchJob(&ctx, req);
  v1::JobEvent ev;
  int progress = 0, candidates = 0, states = 0;
  int64_t last_sequence = 0;
  v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.job().id(), job->id()) << "snapshot first";
  while (reader->Read(&ev)) {
    EXPECT_GE(ev.sequence(), last_sequence) << "sequences never go back";
    last_sequence = ev.sequence();
    if (ev.has_progress()) {
      ++progress;
      EXPECT_GE(ev.progress().k(), 1);
      EXPECT_GE(ev.progress().epoch(), 1);
    }
    if (ev.has_candidate()) ++candidates;
    if (ev.has_job_state()) {
      ++states;
      last_state = ev.job_state();
    }
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last_state, v1::JOB_STATE_SUCCEEDED);
  EXPECT_GT(progress, 0) << "live progress from the workers";
  EXPECT_GE(candidates, 2);
  EXPECT_GE(states, 1);
}

TEST_F(IntegrationTest, BadRequestsGetTheRightCodeAndTheServerKeepsServing) {
  struct Case {
    const char* what;
    std::function<void(v1::JobSpec*)> mutate;
    absl::StatusCode code;
    const char* message;
  };
  auto one_class = cluster_->UploadStripes(1, 20);
  ASSERT_TRUE(one_class.ok()) << one_class.status();
  const std::string one_class_id = one_class->id();
  const Case cases[] = {
      {"unknown dataset",
       [](v1::JobSpec* s) { s->set_dataset_id("sha256:" + std::string(64, '0')); },
       absl::StatusCode::kNotFound, "unknown"},
      {"zero limits",
       [](v1::JobSpec* s) {
         s->mutable_constraints()->set_ram_bytes(0);
         s->mutable_constraints()->set_flash_bytes(0);
       },
       absl::StatusCode::kInvalidArgument, "ram_bytes"},
      {"negative limit", [](v1::JobSpec* s) { s->mutable_constraints()->set_flash_bytes(-1); },
       absl::StatusCode::kInvalidArgument, "flash_bytes is -1"},
      {"0x0 input",
       [](v1::JobSpec* s) {
         s->mutable_input()->set_height(0);
         s->mutable_input()->set_width(0);
       },
       absl::StatusCode::kInvalidArgument, "height and width"},
      {"unknown variant", [](v1::JobSpec* s) { s->set_variant("1999"); },
       absl::StatusCode::kInvalidArgument, "variant"},
      {"one-class dataset", [&](v1::JobSpec* s) { s->set_dataset_id(one_class_id); },
       absl::StatusCode::kInvalidArgument, "class"},
  };
  for (const auto& c : cases) {
    v1::JobSpec spec = Spec(*dataset_, 1);
    c.mutate(&spec);
    auto job = cluster_->Submit(spec);
    EXPECT_EQ(job.status().code(), c.code) << c.what << ": " << job.status();
    EXPECT_THAT(std::string(job.status().message()), HasSubstr(c.message)) << c.what;
  }
  // Oversized uploads: announced, and unannounced (the stream is cut at the limit).
  const std::string big(1200000, 'x');
  auto announced = Upload(cluster_->stub(), big, static_cast<int64_t>(big.size()));
  EXPECT_EQ(announced.status().code(), absl::StatusCode::kResourceExhausted) << announced.status();
  EXPECT_THAT(std::string(announced.status().message()), HasSubstr("--max-upload-bytes"));
  auto unannounced = Upload(cluster_->stub(), big, 0);
  EXPECT_EQ(unannounced.status().code(), absl::StatusCode::kResourceExhausted);
  // A folder under --data-dir registers by content; paths escaping it do not.
  WriteStripes((cluster_->dir() / "data" / "served").string(), 5, kSize, 2, 5);
  {
    grpc::ClientContext rctx;
    rctx.set_deadline(Deadline(10));
    v1::RegisterDatasetPathRequest ok_req;
    ok_req.set_path("served");
    v1::DatasetInfo served;
    ASSERT_TRUE(cluster_->stub()->RegisterDatasetPath(&rctx, ok_req, &served).ok());
    EXPECT_EQ(served.num_images(), 10);
    EXPECT_EQ(served.source(), "served");
    auto job = cluster_->Submit(Spec(served.id(), 1));
    ASSERT_TRUE(job.ok()) << job.status();
    auto prepared = cluster_->WaitJob(job->id(), absl::Seconds(30), [](const v1::Job& j) {
      return j.state() != v1::JOB_STATE_QUEUED && j.state() != v1::JOB_STATE_PREPARING;
    });
    ASSERT_TRUE(prepared.ok()) << prepared.status();
    EXPECT_EQ(prepared->num_images(), 10) << prepared->error();
    grpc::ClientContext cctx;
    cctx.set_deadline(Deadline(10));
    v1::CancelJobRequest creq;
    creq.set_job_id(job->id());
    v1::CancelJobResponse cresp;
    const grpc::Status cancelled = cluster_->stub()->CancelJob(&cctx, creq, &cresp);
    EXPECT_TRUE(cancelled.ok() ||
                cancelled.error_code() == grpc::StatusCode::FAILED_PRECONDITION)  // already done
        << cancelled.error_message();
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(10));
  v1::RegisterDatasetPathRequest preq;
  preq.set_path("../../etc");
  v1::DatasetInfo info;
  EXPECT_EQ(cluster_->stub()->RegisterDatasetPath(&ctx, preq, &info).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Still serving.
  EXPECT_TRUE(cluster_->coordinator()->Alive());
  EXPECT_TRUE(
      HealthServing(grpc::CreateChannel(cluster_->address(), grpc::InsecureChannelCredentials())));
  grpc::ClientContext ctx2;
  ctx2.set_deadline(Deadline(10));
  v1::GetDatasetRequest greq;
  greq.set_id(*dataset_);
  EXPECT_TRUE(cluster_->stub()->GetDataset(&ctx2, greq, &info).ok());
  EXPECT_EQ(info.num_images(), 200);
}

TEST_F(IntegrationTest, CancelStopsTheWorkersTraining) {
  auto job = cluster_->Submit(Spec(*dataset_, 1000));  // many seconds of training if not stopped
  ASSERT_TRUE(job.ok()) << job.status();
  auto running = cluster_->WaitJob(job->id(), absl::Seconds(30), [](const v1::Job& j) {
    return j.candidates_size() > 0 &&
           j.candidates(j.candidates_size() - 1).state() == v1::CANDIDATE_STATE_RUNNING;
  });
  ASSERT_TRUE(running.ok()) << running.status() << cluster_->Logs();
  const std::string worker_id = running->candidates(running->candidates_size() - 1).worker();
  const int w = cluster_->WorkerIndex(worker_id);
  ASSERT_GE(w, 0) << "worker " << worker_id;
  // Wait until the evaluation's child process trains.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (cluster_->worker(w)->Children().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_FALSE(cluster_->worker(w)->Children().empty()) << cluster_->Logs();

  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(10));
  v1::CancelJobRequest creq;
  creq.set_job_id(job->id());
  v1::CancelJobResponse cresp;
  ASSERT_TRUE(cluster_->stub()->CancelJob(&ctx, creq, &cresp).ok());
  EXPECT_EQ(cresp.job().state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cresp.job().candidates(cresp.job().candidates_size() - 1).state(),
            v1::CANDIDATE_STATE_CANCELLED);
  const absl::Time stop_deadline = absl::Now() + absl::Seconds(10);
  while (!cluster_->worker(w)->Children().empty() && absl::Now() < stop_deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(cluster_->worker(w)->Children().empty())
      << "the worker's training child still runs after the cancel" << cluster_->Logs();
  EXPECT_TRUE(cluster_->worker(w)->Alive());
}

TEST_F(IntegrationTest, HealthAndReflectionServeStockTools) {
  auto channel = grpc::CreateChannel(cluster_->address(), grpc::InsecureChannelCredentials());
  EXPECT_TRUE(HealthServing(channel));
  EXPECT_TRUE(HealthServing(channel, "nanonas.v1.Coordinator"));
  auto services = ReflectionServices(channel);
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_THAT(*services, ::testing::Contains("nanonas.v1.Coordinator"));
  EXPECT_THAT(*services, ::testing::Contains("grpc.health.v1.Health"));
}

TEST_F(IntegrationTest, MetricsOfCoordinatorAndWorkerPassPromtool) {
  auto coord = HttpGet(cluster_->metrics_address(), "/metrics");
  ASSERT_TRUE(coord.ok()) << coord.status();
  EXPECT_THAT(*coord, HasSubstr("nanonas_coordinator_workers_connected"));
  EXPECT_THAT(*coord, HasSubstr("nanonas_coordinator_evaluation_duration_seconds_bucket"));
  absl::Status st = PromtoolCheck(*coord, (cluster_->dir() / "coord.prom").string());
  EXPECT_TRUE(st.ok()) << st;
  auto worker = HttpGet(absl::StrCat("127.0.0.1:", cluster_->worker_metrics_port(0)), "/metrics");
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_THAT(*worker, HasSubstr("nanonas_"));
  st = PromtoolCheck(*worker, (cluster_->dir() / "worker.prom").string());
  EXPECT_TRUE(st.ok()) << st;
}

#ifdef NANONAS_CLI_BIN
struct CliResult {
  int exit_code = -1;
  std::string output;
};

CliResult RunCli(const Cluster& cluster, std::vector<std::string> args, const std::string& log) {
  std::vector<std::string> argv = {NANONAS_CLI_BIN, "--server", cluster.address()};
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string path = (cluster.dir() / log).string();
  Process p(argv, path);
  const int status = p.Wait(absl::Seconds(120));
  CliResult r;
  r.output = p.LogTail(100000);
  if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

TEST_F(IntegrationTest, CliSubmitsWatchesAndGetsAJob) {
  const fs::path folder = cluster_->dir() / "cli-stripes";
  WriteStripes(folder.string(), 60, kSize, 2, 11);
  CliResult submit = RunCli(*cluster_,
                            {"--json", "submit", folder.string(), "--input", "16x16x3", "--ram",
                             std::to_string(RamLimit()), "--epochs", "1", "--skip-final"},
                            "cli-submit.log");
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  const size_t key = submit.output.find("\"job_id\"");
  ASSERT_NE(key, std::string::npos) << submit.output;
  const size_t open = submit.output.find('"', submit.output.find(':', key));
  const size_t close = submit.output.find('"', open + 1);
  const std::string job_id = submit.output.substr(open + 1, close - open - 1);
  ASSERT_FALSE(job_id.empty()) << submit.output;

  CliResult watch = RunCli(*cluster_, {"watch", job_id}, "cli-watch.log");
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  CliResult get = RunCli(*cluster_, {"--json", "get", job_id}, "cli-get.log");
  EXPECT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(get.output, HasSubstr(job_id));
  auto job = cluster_->Get(job_id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->num_images(), 120);

  // A one-class folder is refused with exit status 2 and a message that says why.
  const fs::path lonely = cluster_->dir() / "cli-one-class";
  WriteStripes(lonely.string(), 10, kSize, 1, 3);
  CliResult bad =
      RunCli(*cluster_, {"submit", lonely.string(), "--input", "16x16x3", "--ram", "64KiB"},
             "cli-bad.log");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("class"));
  CliResult missing = RunCli(*cluster_, {"get", "job-does-not-exist"}, "cli-missing.log");
  EXPECT_EQ(missing.exit_code, 4) << missing.output;
}
// The deliverable: a job with a tiny final training and a test folder (submitted, watched and
// downloaded with the CLI) ends SUCCEEDED with float and quantized test accuracy; its artifacts
// come down with `nanonas get --out`; model.tflite parses and its size is the job's Flash figure.
TEST_F(IntegrationTest, FinalTrainingExportsAModelWithTestAccuracyAndTheCliDownloadsIt) {
  const fs::path folder = cluster_->dir() / "final-stripes";
  const fs::path test_folder = cluster_->dir() / "final-stripes-test";
  WriteStripes(folder.string(), 100, kSize, 2, 21);
  WriteStripes(test_folder.string(), 30, kSize, 2, 22);
  CliResult submit =
      RunCli(*cluster_,
             {"--json", "submit", folder.string(), "--input", "16x16x3", "--ram",
              std::to_string(RamLimit()), "--epochs", "1", "--val-split", "0.2", "--final-epochs",
              "3", "--test-dir", test_folder.string(), "--name", "Final Stripes"},
             "final-submit.log");
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  const size_t key = submit.output.find("\"job_id\"");
  ASSERT_NE(key, std::string::npos) << submit.output;
  const size_t open = submit.output.find('"', submit.output.find(':', key));
  const size_t close = submit.output.find('"', open + 1);
  const std::string job_id = submit.output.substr(open + 1, close - open - 1);

  CliResult watch = RunCli(*cluster_, {"watch", job_id}, "final-watch.log");
  EXPECT_EQ(watch.exit_code, 0) << watch.output << cluster_->Logs();
  auto job = cluster_->WaitEnd(job_id, absl::Seconds(120));
  ASSERT_TRUE(job.ok()) << job.status() << cluster_->Logs();
  ASSERT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED) << job->error() << cluster_->Logs();
  const v1::FinalTraining& ft = job->final_training();
  EXPECT_EQ(ft.state(), v1::CANDIDATE_STATE_DONE);
  EXPECT_EQ(ft.k(), job->result().k());
  EXPECT_EQ(ft.c(), job->result().c());
  EXPECT_EQ(ft.epochs_size(), 3);
  EXPECT_GE(ft.best_epoch(), 1);
  EXPECT_TRUE(ft.has_test_accuracy());
  EXPECT_EQ(ft.test_images(), 60);
  EXPECT_GT(ft.float_test_accuracy(), 0);
  EXPECT_GT(ft.quantized_test_accuracy(), 0);
  EXPECT_GT(ft.quantized_validation_accuracy(), 0);
  EXPECT_EQ(ft.flash_bytes(), job->result().flash_bytes());
  EXPECT_EQ(ft.ram_bytes(), job->result().ram_bytes());
  std::map<std::string, v1::Artifact> artifacts;
  for (const auto& a : job->artifacts()) artifacts[a.name()] = a;
  ASSERT_EQ(artifacts.size(), 4u) << job->DebugString();
  for (const char* name : {"model.tflite", "model.h", "report.json", "search-path.svg"}) {
    EXPECT_EQ(artifacts.count(name), 1u) << name;
  }
  EXPECT_THAT(watch.output, HasSubstr("final training"));

  // ListArtifacts agrees with the job.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline(10));
    v1::ListArtifactsRequest req;
    req.set_job_id(job_id);
    v1::ListArtifactsResponse resp;
    ASSERT_TRUE(cluster_->stub()->ListArtifacts(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.artifacts_size(), 4);
  }
  const fs::path out = cluster_->dir() / "final-out";
  CliResult get = RunCli(*cluster_, {"get", job_id, "--out", out.string()}, "final-get.log");
  ASSERT_EQ(get.exit_code, 0) << get.output;
  EXPECT_THAT(get.output, HasSubstr((out / "model.tflite").string()));
  for (const auto& [name, a] : artifacts) {
    ASSERT_TRUE(fs::exists(out / name)) << name;
    EXPECT_EQ(static_cast<int64_t>(fs::file_size(out / name)), a.size_bytes()) << name;
  }
  auto graph = ReadTfliteFile((out / "model.tflite").string());
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->schema_version, 3u);
  EXPECT_EQ(graph->file_bytes, job->result().flash_bytes())
      << "the file's size is the Flash figure the search checked";
  ASSERT_FALSE(graph->inputs.empty());
  const TfliteTensor& input = graph->tensors[static_cast<size_t>(graph->inputs[0])];
  EXPECT_EQ(input.type, tflite::TensorType_UINT8);
  EXPECT_EQ(input.shape, (std::vector<int>{1, kSize, kSize, 3}));
  std::ifstream header(out / "model.h");
  std::string text((std::istreambuf_iterator<char>(header)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("nanonas_final_stripes_model"));
  std::ifstream report(out / "report.json");
  std::string json((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  EXPECT_THAT(json, HasSubstr("quantized_test_accuracy"));

  // Not an artifact of this job: NOT_FOUND.
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(10));
  v1::DownloadArtifactRequest dreq;
  dreq.set_job_id(job_id);
  dreq.set_name("weights.bin");
  auto reader = cluster_->stub()->DownloadArtifact(&ctx, dreq);
  v1::ArtifactChunk chunk;
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}
#endif  // NANONAS_CLI_BIN

// Without a test set the job reports validation figures only.
TEST_F(IntegrationTest, AFinalTrainingWithoutATestSetReportsValidationFiguresOnly) {
  v1::JobSpec spec = Spec(*dataset_, 1);
  spec.set_validation_split(0.2);  // 200 images leave 160 (>= 150) to calibrate on
  spec.mutable_final_training()->set_skip(false);
  spec.mutable_final_training()->set_epochs(2);
  auto job = cluster_->Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto done = cluster_->WaitEnd(job->id(), absl::Seconds(120));
  ASSERT_TRUE(done.ok()) << done.status() << cluster_->Logs();
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << cluster_->Logs();
  const v1::FinalTraining& ft = done->final_training();
  EXPECT_EQ(ft.state(), v1::CANDIDATE_STATE_DONE);
  EXPECT_FALSE(ft.has_test_accuracy());
  EXPECT_EQ(ft.float_test_accuracy(), 0);
  EXPECT_EQ(ft.quantized_test_accuracy(), 0);
  EXPECT_GT(ft.best_validation_accuracy(), 0);
  EXPECT_GT(ft.quantized_validation_accuracy(), 0);
  EXPECT_EQ(ft.flash_bytes(), done->result().flash_bytes());
  EXPECT_EQ(done->artifacts_size(), 4);
}

// A test folder whose classes differ from the training set's is refused at submit.
TEST_F(IntegrationTest, ATestSetWithOtherClassesIsRefusedAtSubmit) {
  const fs::path root = cluster_->dir() / "other-classes";
  WriteStripes(root.string(), 5, kSize, 2, 5);
  fs::rename(root / "vertical", root / "diagonal");
  const std::string tar = TarFolder(root.string(), "other");
  auto info = Upload(cluster_->stub(), tar, static_cast<int64_t>(tar.size()));
  ASSERT_TRUE(info.ok()) << info.status();
  v1::JobSpec spec = Spec(*dataset_, 1);
  spec.set_test_dataset_id(info->id());
  auto job = cluster_->Submit(spec);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument) << job.status();
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("diagonal"));
}

TEST_F(IntegrationTest, SubmitAnswersQueuedAndARepeatedRequestIdGetsTheSameJob) {
  v1::JobSpec spec = Spec(*dataset_, 1);
  auto job = cluster_->Submit(spec, "integration-req-1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED) << "the dataset is prepared after the answer";
  EXPECT_EQ(job->request_id(), "integration-req-1");
  auto again = cluster_->Submit(spec, "integration-req-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->id(), job->id());
  v1::JobSpec other = spec;
  other.set_name("other");
  EXPECT_EQ(cluster_->Submit(other, "integration-req-1").status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto ended = cluster_->WaitEnd(job->id(), absl::Seconds(120));
  ASSERT_TRUE(ended.ok()) << ended.status() << cluster_->Logs();
  EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->error();
  EXPECT_FALSE(ended->evaluation_dataset_id().empty()) << "prepared before it ran";
}

// ---- Failures

TEST(IntegrationFailureTest, WorkerKilledMidEvaluationAndTheJobStillSucceeds) {
  Cluster cluster("workerkill");
  ASSERT_TRUE(cluster.StartCoordinator() && cluster.StartWorker() && cluster.StartWorker())
      << cluster.Logs();
  auto data = cluster.UploadStripes(2);
  ASSERT_TRUE(data.ok()) << data.status();
  auto job = cluster.Submit(Spec(data->id(), 300));
  ASSERT_TRUE(job.ok()) << job.status();
  auto running = cluster.WaitJob(job->id(), absl::Seconds(30), [](const v1::Job& j) {
    return j.candidates_size() > 0 &&
           j.candidates(j.candidates_size() - 1).state() == v1::CANDIDATE_STATE_RUNNING;
  });
  ASSERT_TRUE(running.ok()) << running.status() << cluster.Logs();
  const v1::Candidate victim = running->candidates(running->candidates_size() - 1);
  const int w = cluster.WorkerIndex(victim.worker());
  ASSERT_GE(w, 0);
  cluster.worker(w)->Signal(SIGKILL);
  ASSERT_NE(cluster.worker(w)->Wait(absl::Seconds(5)), -1);

  auto done = cluster.WaitEnd(job->id(), absl::Seconds(120));
  ASSERT_TRUE(done.ok()) << done.status() << cluster.Logs();
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << cluster.Logs();
  const v1::Candidate& again = done->candidates(victim.sequence());
  EXPECT_EQ(again.state(), v1::CANDIDATE_STATE_DONE) << again.DebugString();
  EXPECT_EQ(again.attempts(), 2) << "dispatched again after the worker died";
  EXPECT_NE(again.worker(), victim.worker());
  for (int i = victim.sequence() + 1; i < done->candidates_size(); ++i) {
    EXPECT_NE(done->candidates(i).worker(), victim.worker());
  }
}

TEST(IntegrationFailureTest, CoordinatorKilledAndRestartedResumesWithoutRerunningFinished) {
  Cluster cluster("coordkill");
  // Sequential dispatch, so that the kill lands between a finished and a running candidate.
  const std::vector<std::string> flags = {"--speculate=false"};
  ASSERT_TRUE(cluster.StartCoordinator(flags) && cluster.StartWorker() && cluster.StartWorker())
      << cluster.Logs();
  auto data = cluster.UploadStripes(2);
  ASSERT_TRUE(data.ok()) << data.status();
  auto job = cluster.Submit(Spec(data->id(), 300));
  ASSERT_TRUE(job.ok()) << job.status();
  // At least one finished candidate and the next one running.
  auto mid = cluster.WaitJob(job->id(), absl::Seconds(60), [](const v1::Job& j) {
    return j.candidates_size() >= 2 && j.candidates(0).state() == v1::CANDIDATE_STATE_DONE &&
           j.candidates(j.candidates_size() - 1).state() == v1::CANDIDATE_STATE_RUNNING;
  });
  ASSERT_TRUE(mid.ok()) << mid.status() << cluster.Logs();
  cluster.coordinator()->Signal(SIGKILL);
  ASSERT_NE(cluster.coordinator()->Wait(absl::Seconds(5)), -1);
  // The last state the dead coordinator committed.
  cluster.RestartCoordinatorProcess(flags);
  auto before = cluster.Get(job->id());
  ASSERT_TRUE(before.ok()) << before.status();
  std::map<int, v1::Candidate> finished;
  for (const auto& c : before->candidates()) {
    if (c.state() == v1::CANDIDATE_STATE_DONE) finished[c.sequence()] = c;
  }
  ASSERT_FALSE(finished.empty());
  ASSERT_TRUE(cluster.WaitWorkersAtLeast(2)) << "workers re-register" << cluster.Logs();

  auto done = cluster.WaitEnd(job->id(), absl::Seconds(120));
  ASSERT_TRUE(done.ok()) << done.status() << cluster.Logs();
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << cluster.Logs();
  for (const auto& [seq, c] : finished) {
    const v1::Candidate& after = done->candidates(seq);
    EXPECT_EQ(after.attempts(), c.attempts()) << "(" << c.k() << "," << c.c() << ") ran again";
    EXPECT_EQ(after.duration_seconds(), c.duration_seconds());
    EXPECT_EQ(after.worker(), c.worker());
    EXPECT_EQ(after.best_validation_accuracy(), c.best_validation_accuracy());
  }
}

// Killed during the final training, the coordinator resumes it after a restart without running
// the search again; the artifacts survive a further restart.
TEST(IntegrationFailureTest, CoordinatorKilledDuringTheFinalTrainingResumesItAndKeepsArtifacts) {
  Cluster cluster("finalkill");
  const std::vector<std::string> flags = {"--speculate=false"};
  ASSERT_TRUE(cluster.StartCoordinator(flags) && cluster.StartWorker()) << cluster.Logs();
  auto data = cluster.UploadStripes(2);
  ASSERT_TRUE(data.ok()) << data.status();
  v1::JobSpec spec = Spec(data->id(), 1);
  spec.set_validation_split(0.2);
  spec.mutable_final_training()->set_skip(false);
  spec.mutable_final_training()->set_epochs(300);
  auto job = cluster.Submit(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  auto mid = cluster.WaitJob(job->id(), absl::Seconds(90), [](const v1::Job& j) {
    return j.final_training().state() == v1::CANDIDATE_STATE_RUNNING &&
           j.final_training().epochs_size() >= 2;
  });
  ASSERT_TRUE(mid.ok()) << mid.status() << cluster.Logs();
  cluster.coordinator()->Signal(SIGKILL);
  ASSERT_NE(cluster.coordinator()->Wait(absl::Seconds(5)), -1);
  cluster.RestartCoordinatorProcess(flags);
  // (The resumed final training may already be over here: it is short.)
  const v1::Job& before = *mid;
  EXPECT_TRUE(before.result().found());
  ASSERT_TRUE(cluster.WaitWorkersAtLeast(1)) << cluster.Logs();
  auto done = cluster.WaitEnd(job->id(), absl::Seconds(120));
  ASSERT_TRUE(done.ok()) << done.status() << cluster.Logs();
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << cluster.Logs();
  EXPECT_GE(done->final_training().attempts(), 2) << "the final training was dispatched again";
  EXPECT_EQ(done->final_training().epochs_size(), 300);
  ASSERT_EQ(done->candidates_size(), before.candidates_size());
  for (int i = 0; i < done->candidates_size(); ++i) {
    EXPECT_EQ(done->candidates(i).attempts(), before.candidates(i).attempts())
        << "the search ran again";
  }
  ASSERT_EQ(done->artifacts_size(), 4);

  // The artifacts survive a restart: listed and downloadable, the same bytes.
  cluster.RestartCoordinatorProcess(flags);
  auto again = cluster.Get(job->id());
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->artifacts_size(), 4);
  std::map<std::string, std::string> sha_before, sha_after;
  for (const auto& a : done->artifacts()) sha_before[a.name()] = a.sha256();
  for (const auto& a : again->artifacts()) sha_after[a.name()] = a.sha256();
  EXPECT_EQ(sha_after, sha_before);
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline(10));
  v1::DownloadArtifactRequest dreq;
  dreq.set_job_id(job->id());
  dreq.set_name("model.tflite");
  auto reader = cluster.stub()->DownloadArtifact(&ctx, dreq);
  std::string bytes;
  v1::ArtifactChunk chunk;
  while (reader->Read(&chunk)) bytes += chunk.data();
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(static_cast<int64_t>(bytes.size()), done->result().flash_bytes());
  EXPECT_EQ(bytes.substr(4, 4), "TFL3");
}

TEST(IntegrationFailureTest, AFrozenWorkerIsDroppedAfterMissedHeartbeatsAndItsWorkRedone) {
  Cluster cluster("frozen");
  const std::vector<std::string> flags = {"--speculate=false"};  // --worker-timeout-ms 2000
  ASSERT_TRUE(cluster.StartCoordinator(flags) && cluster.StartWorker() && cluster.StartWorker())
      << cluster.Logs();
  auto data = cluster.UploadStripes(2);
  ASSERT_TRUE(data.ok()) << data.status();
  auto job = cluster.Submit(Spec(data->id(), 300));
  ASSERT_TRUE(job.ok()) << job.status();
  auto running = cluster.WaitJob(job->id(), absl::Seconds(30), [](const v1::Job& j) {
    return j.candidates_size() > 0 &&
           j.candidates(j.candidates_size() - 1).state() == v1::CANDIDATE_STATE_RUNNING;
  });
  ASSERT_TRUE(running.ok()) << running.status() << cluster.Logs();
  const v1::Candidate victim = running->candidates(running->candidates_size() - 1);
  const int w = cluster.WorkerIndex(victim.worker());
  ASSERT_GE(w, 0);
  // Stopped, not dead: its connections stay open, only its heartbeats stop.
  cluster.worker(w)->Signal(SIGSTOP);
  const std::vector<pid_t> children = cluster.worker(w)->Children();
  for (pid_t child : children) kill(child, SIGSTOP);
  // Whatever happens below, no stopped process outlives the test.
  absl::Cleanup kill_children = [&children] {
    for (pid_t child : children) kill(child, SIGKILL);
  };
  const absl::Time frozen = absl::Now();
  auto moved = cluster.WaitJob(job->id(), absl::Seconds(15), [&](const v1::Job& j) {
    return j.candidates(victim.sequence()).attempts() >= 2 || IsTerminal(j.state());
  });
  ASSERT_TRUE(moved.ok()) << moved.status() << cluster.Logs();
  const double noticed = absl::ToDoubleSeconds(absl::Now() - frozen);
  std::printf("frozen worker noticed and its candidate re-dispatched after %.2f s\n", noticed);
  EXPECT_GE(moved->candidates(victim.sequence()).attempts(), 2);
  EXPECT_NE(moved->candidates(victim.sequence()).worker(), victim.worker());
  auto done = cluster.WaitEnd(job->id(), absl::Seconds(120));
  ASSERT_TRUE(done.ok()) << done.status() << cluster.Logs();
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error() << cluster.Logs();
}

TEST(IntegrationFailureTest, SigtermStopsTheCoordinatorCleanly) {
  Cluster cluster("sigterm");
  ASSERT_TRUE(cluster.StartCoordinator()) << cluster.Logs();
  cluster.coordinator()->Signal(SIGTERM);
  const int status = cluster.coordinator()->Wait(absl::Seconds(10));
  ASSERT_NE(status, -1) << "still running 10 s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cluster.Logs();
}

}  // namespace
}  // namespace nanonas::integration
