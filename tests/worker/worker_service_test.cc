// nanonas-worker end to end: the real binary joins a fake in-process coordinator, fetches a real
// (tiny, generated) dataset by content hash and trains candidates in child processes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/arch/architecture.h"
#include "common/data/dataset.h"
#include "common/export/mcu_flash.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nanonas/v1/nanonas.grpc.pb.h"
#include "worker/service/dataset_cache.h"
#include "worker/service/evaluation_child.h"
#include "worker/service/weights_codec.h"

extern char** environ;

namespace nanonas {
namespace {

using testing::HasSubstr;
namespace v1 = nanonas::v1;

// Two classes: horizontal vs vertical stripes, 16x16x3.
Dataset StripesDataset(int per_class) {
  Dataset d;
  d.shape = {16, 16, 3};
  d.class_names = {"horizontal", "vertical"};
  for (int cls = 0; cls < 2; ++cls) {
    for (int n = 0; n < per_class; ++n) {
      for (int y = 0; y < 16; ++y) {
        for (int x = 0; x < 16; ++x) {
          int on = ((cls == 0 ? y : x) + n) % 4 < 2;
          for (int ch = 0; ch < 3; ++ch) d.images.push_back(on ? 220 : 30 + (n * 7 + ch) % 20);
        }
      }
      d.labels.push_back(cls);
    }
  }
  return d;
}

class FakeCoordinator final : public v1::Coordinator::Service {
 public:
  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* req,
                              v1::RegisterWorkerResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu);
    worker = req->worker();
    ++registrations;
    resp->set_heartbeat_interval_ms(100);
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse* resp) override {
    ++heartbeats;
    resp->set_known(!forget.exchange(false));
    return grpc::Status::OK;
  }
  grpc::Status LeaveWorker(grpc::ServerContext*, const v1::LeaveRequest* req,
                           v1::LeaveResponse*) override {
    std::lock_guard<std::mutex> lock(mu);
    left = req->worker_id();
    return grpc::Status::OK;
  }
  grpc::Status FetchDataset(grpc::ServerContext*, const v1::FetchDatasetRequest* req,
                            grpc::ServerWriter<v1::DatasetChunk>* writer) override {
    ++fetches;
    if (req->id() != dataset_id)
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such dataset");
    for (size_t off = 0; off < dataset_bytes.size(); off += 4096) {
      v1::DatasetChunk chunk;
      if (off == 0) chunk.set_total_bytes(static_cast<int64_t>(dataset_bytes.size()));
      chunk.set_data(dataset_bytes.substr(off, 4096));
      writer->Write(chunk);
    }
    return grpc::Status::OK;
  }

  std::mutex mu;
  v1::WorkerDescription worker;
  int registrations = 0;
  std::string left;
  std::atomic<int> heartbeats{0}, fetches{0};
  std::atomic<bool> forget{false};
  std::string dataset_id, dataset_bytes;
};

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// GET http://127.0.0.1:port/metrics; the body, or "" on failure.
std::string HttpGetMetrics(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

template <typename F>
bool WaitUntil(F f, int seconds) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

class WorkerProcessTest : public testing::Test {
 protected:
  void SetUp() override {
    // Named as the coordinator names decoded datasets: by ContentHash (verified by decoding).
    Dataset data = StripesDataset(40);
    coordinator_.dataset_bytes = SerializeDataset(data);
    coordinator_.dataset_id = "sha256:" + ContentHash(data);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&coordinator_);
    server_ = builder.BuildAndStart();
    ASSERT_TRUE(server_);
    cache_dir_ = (std::filesystem::temp_directory_path() /
                  ("nanonas-worker-test-" + std::to_string(getpid())))
                     .string();
    std::filesystem::remove_all(cache_dir_);
  }
  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    std::filesystem::remove_all(cache_dir_);
    std::filesystem::remove(cache_dir_ + "-metrics.txt");
  }

  void StartWorker(const std::vector<std::string>& extra) {
    metrics_port_ = FreePort();
    std::vector<std::string> args = {WORKER_BINARY,
                                     "--coordinator",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--metrics-listen",
                                     "127.0.0.1:" + std::to_string(metrics_port_),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--cache-dir",
                                     cache_dir_,
                                     "--slots",
                                     "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(posix_spawn(&pid_, WORKER_BINARY, nullptr, nullptr, argv.data(), environ), 0);
    ASSERT_TRUE(WaitUntil(
        [&] {
          std::lock_guard<std::mutex> lock(coordinator_.mu);
          return coordinator_.registrations > 0;
        },
        30));
    std::string address;
    {
      std::lock_guard<std::mutex> lock(coordinator_.mu);
      address = coordinator_.worker.address();
    }
    stub_ = v1::Worker::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }

  v1::EvaluateRequest Request(int k, int c, int epochs) {
    v1::EvaluateRequest r;
    r.set_job_id("job-1");
    r.set_evaluation_id("e-" + std::to_string(k) + "-" + std::to_string(c));
    r.set_dataset_id(coordinator_.dataset_id);
    r.mutable_input()->set_height(16);
    r.mutable_input()->set_width(16);
    r.mutable_input()->set_channels(3);
    r.set_k(k);
    r.set_c(c);
    r.set_variant("2023");
    r.set_validation_split(0.25);
    r.mutable_settings()->set_epochs(epochs);
    r.mutable_settings()->set_batch_size(16);
    return r;
  }

  // Runs an Evaluate RPC to the end; returns the final status and fills events.
  grpc::Status Evaluate(const v1::EvaluateRequest& r, std::vector<v1::EvaluateEvent>* events) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    auto reader = stub_->Evaluate(&ctx, r);
    v1::EvaluateEvent e;
    while (reader->Read(&e)) events->push_back(e);
    return reader->Finish();
  }

  FakeCoordinator coordinator_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int metrics_port_ = 0;
  pid_t pid_ = -1;
  std::string cache_dir_;
  std::unique_ptr<v1::Worker::Stub> stub_;
};

TEST(WorkerEvaluateCandidateTest, TrainsARealCandidateInProcess) {
  Dataset data = StripesDataset(40);
  v1::EvaluateRequest r;
  r.mutable_input()->set_height(16);
  r.mutable_input()->set_width(16);
  r.mutable_input()->set_channels(3);
  r.set_k(2);
  r.set_c(1);
  r.set_validation_split(0.25);
  r.mutable_settings()->set_epochs(2);
  int epochs = 0;
  auto result = EvaluateCandidate(r, data, 0, [&](const v1::EvaluateEvent& e) {
    if (e.has_epoch()) ++epochs;
  });
  EXPECT_EQ(result.state(), v1::CANDIDATE_STATE_DONE) << result.error();
  EXPECT_EQ(result.epochs_size(), 2);
  EXPECT_EQ(epochs, 2);
  EXPECT_GT(result.train_images_per_second(), 0);
  EXPECT_TRUE(result.weights().empty());  // only the final training returns the model

  // The final training quantizes and exports: it needs >= 150 training images to calibrate on.
  auto final_request = r;
  final_request.set_final_training(true);
  final_request.mutable_final_settings()->set_epochs(2);
  final_request.mutable_final_settings()->set_batch_size(16);
  auto too_few = EvaluateCandidate(final_request, data, 0, [](const v1::EvaluateEvent&) {});
  EXPECT_EQ(too_few.state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(too_few.error(), HasSubstr("150"));
  const Dataset big = StripesDataset(110);  // 220 images, 165 for training
  const Dataset test = StripesDataset(10);
  int final_progress = 0;
  auto trained = EvaluateCandidate(
      final_request, big, 0,
      [&](const v1::EvaluateEvent& e) {
        final_progress += e.has_progress() && e.progress().final_training();
      },
      &test);
  ASSERT_EQ(trained.state(), v1::CANDIDATE_STATE_DONE) << trained.error();
  EXPECT_GT(final_progress, 0);
  EXPECT_EQ(trained.epochs_size(), 2);
  EXPECT_GE(trained.best_epoch(), 1);
  auto weights = DeserializeModelWeights(trained.weights());
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->convs.size(), 2u);  // c = 1: the first conv and one cell
  EXPECT_EQ(weights->dense.out_features, 2);
  // The model: a TFLite flatbuffer ("TFL3" at offset 4) of exactly the predicted Flash size.
  ASSERT_GT(trained.tflite().size(), 8u);
  EXPECT_EQ(trained.tflite().substr(4, 4), "TFL3");
  CandidateSpec spec;
  spec.k = 2;
  spec.c = 1;
  spec.input = {16, 16, 3};
  spec.classes = 2;
  auto arch = BuildArchitecture(spec);
  ASSERT_TRUE(arch.ok());
  EXPECT_EQ(static_cast<int64_t>(trained.tflite().size()), ExportedFlashBytes(*arch));
  EXPECT_TRUE(trained.has_test_accuracy());
  EXPECT_EQ(trained.test_images(), 20);
  EXPECT_GE(trained.float_test_accuracy(), 0.0);
  EXPECT_LE(trained.float_test_accuracy(), 1.0);
  EXPECT_GE(trained.quantized_test_accuracy(), 0.0);
  EXPECT_LE(trained.quantized_test_accuracy(), 1.0);
  EXPECT_GT(trained.quantized_validation_accuracy(), 0.0);
  // Without a test set: validation figures only.
  auto no_test = EvaluateCandidate(final_request, big, 0, [](const v1::EvaluateEvent&) {});
  ASSERT_EQ(no_test.state(), v1::CANDIDATE_STATE_DONE) << no_test.error();
  EXPECT_FALSE(no_test.has_test_accuracy());
  EXPECT_FALSE(no_test.tflite().empty());

  auto refused = EvaluateCandidate(r, data, 1024, [](const v1::EvaluateEvent&) {});
  EXPECT_EQ(refused.state(), v1::CANDIDATE_STATE_HOST_INFEASIBLE);
  EXPECT_THAT(refused.error(), HasSubstr("estimated training memory"));
  r.set_k(0);
  EXPECT_EQ(EvaluateCandidate(r, data, 0, [](const v1::EvaluateEvent&) {}).state(),
            v1::CANDIDATE_STATE_FAILED);
}

TEST_F(WorkerProcessTest, JoinsEvaluatesInAChildAndLeavesOnSigterm) {
  StartWorker({"--memory-budget", "2GiB"});
  {
    std::lock_guard<std::mutex> lock(coordinator_.mu);
    EXPECT_EQ(coordinator_.worker.slots(), 1);
    EXPECT_EQ(coordinator_.worker.memory_budget_bytes(), 2LL << 30);
    EXPECT_THAT(coordinator_.worker.address(), HasSubstr("127.0.0.1:"));
  }
  grpc::ClientContext dctx;
  dctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::WorkerDescription described;
  ASSERT_TRUE(stub_->Describe(&dctx, v1::DescribeRequest(), &described).ok());
  EXPECT_FALSE(described.id().empty());

  std::vector<v1::EvaluateEvent> events;
  grpc::Status s = Evaluate(Request(2, 1, 2), &events);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_FALSE(events.empty());
  const auto& result = events.back().result();
  EXPECT_EQ(result.state(), v1::CANDIDATE_STATE_DONE) << result.error();
  EXPECT_EQ(result.epochs_size(), 2);
  EXPECT_GT(result.peak_memory_bytes(), 1 << 20);
  EXPECT_GT(result.peak_anonymous_bytes(), 1 << 20);
  EXPECT_LT(result.peak_anonymous_bytes(), result.peak_memory_bytes());
  int epoch_events = 0;
  for (const auto& e : events) epoch_events += e.has_epoch();
  EXPECT_EQ(epoch_events, 2);

  // The job's host memory below the estimate: refused before training.
  events.clear();
  auto small = Request(2, 1, 1);
  // 16 MiB: below the 32 MiB process baseline the estimate assumes, so the child refuses before
  // training (or, were its anonymous memory over 16 MiB first, the watchdog kills it). Either
  // way: HOST_INFEASIBLE against that budget. (The budget limits anonymous memory: this
  // candidate's was 14.6 MiB of its 63 MiB resident here, the rest mapped libraries and data.)
  small.set_host_memory_bytes(16 << 20);
  ASSERT_TRUE(Evaluate(small, &events).ok());
  EXPECT_EQ(events.back().result().state(), v1::CANDIDATE_STATE_HOST_INFEASIBLE);
  EXPECT_THAT(events.back().result().error(), HasSubstr("the budget 16.00 MiB"));
  EXPECT_EQ(coordinator_.fetches.load(), 1);  // the dataset came from the cache the second time

  // Metrics: the evaluations by outcome, and the text passes `promtool check metrics`.
  std::string metrics = HttpGetMetrics(metrics_port_);
  EXPECT_THAT(metrics, HasSubstr("nanonas_worker_evaluations_total{outcome=\"done\"} 1"));
  EXPECT_THAT(metrics,
              HasSubstr("nanonas_worker_evaluations_total{outcome=\"host_infeasible\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("nanonas_worker_evaluation_peak_memory_bytes_count 2"));
  EXPECT_THAT(metrics, HasSubstr("nanonas_worker_evaluation_peak_anonymous_bytes_count 2"));
  EXPECT_THAT(metrics, HasSubstr("nanonas_worker_training_images_per_second_count 1"));
  EXPECT_THAT(metrics, HasSubstr("nanonas_worker_busy_slots 0"));
  if (access("/usr/bin/promtool", X_OK) == 0) {
    std::string file = cache_dir_ + "-metrics.txt";
    std::ofstream(file) << metrics;
    std::string cmd = "/usr/bin/promtool check metrics < " + file + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string lint;
    char buf[512];
    while (fgets(buf, sizeof(buf), p) != nullptr) lint += buf;
    int rc = pclose(p);
    EXPECT_EQ(rc, 0) << lint;
    EXPECT_EQ(lint, "") << lint;
  }

  // The coordinator forgets the worker (restart): it registers again.
  coordinator_.forget = true;
  ASSERT_TRUE(WaitUntil(
      [&] {
        std::lock_guard<std::mutex> lock(coordinator_.mu);
        return coordinator_.registrations >= 2;
      },
      10));

  kill(pid_, SIGTERM);
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, 15));
  pid_ = -1;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  std::lock_guard<std::mutex> lock(coordinator_.mu);
  EXPECT_EQ(coordinator_.left, coordinator_.worker.id());
}

TEST_F(WorkerProcessTest, CancellingTheRpcKillsTheChildAndTheWorkerKeepsServing) {
  StartWorker({});
  grpc::ClientContext ctx;
  auto reader = stub_->Evaluate(&ctx, Request(16, 2, 500));
  v1::EvaluateEvent e;
  ASSERT_TRUE(reader->Read(&e));  // training has started in the child
  auto children = [&] {
    std::string path =
        "/proc/" + std::to_string(pid_) + "/task/" + std::to_string(pid_) + "/children";
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    return text;
  };
  ctx.TryCancel();
  while (reader->Read(&e)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The child process is gone soon after (killed, reaped), and a new evaluation runs.
  EXPECT_TRUE(WaitUntil([&] { return children().empty(); }, 10)) << children();
  std::vector<v1::EvaluateEvent> events;
  bool ok = WaitUntil(
      [&] {
        events.clear();
        return Evaluate(Request(1, 0, 1), &events).ok();  // the slot may take a moment to free
      },
      10);
  ASSERT_TRUE(ok);
  EXPECT_EQ(events.back().result().state(), v1::CANDIDATE_STATE_DONE);
}

TEST_F(WorkerProcessTest, AnUnknownDatasetFailsWithTheReason) {
  StartWorker({});
  auto r = Request(1, 0, 1);
  r.set_dataset_id("sha256:" + std::string(64, 'f'));
  std::vector<v1::EvaluateEvent> events;
  ASSERT_TRUE(Evaluate(r, &events).ok());
  EXPECT_EQ(events.back().result().state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(events.back().result().error(), HasSubstr("no such dataset"));
}

}  // namespace
}  // namespace nanonas
