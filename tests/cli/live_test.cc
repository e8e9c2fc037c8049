// Clients against a live coordinator and worker on loopback: the `nanonas` CLI and the Python
// example client (client/python) each run a real small search to the end.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nanonas/v1/nanonas.grpc.pb.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

extern char** environ;

namespace nanonas {
namespace {

namespace fs = std::filesystem;
using testing::HasSubstr;

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

pid_t Spawn(const std::vector<std::string>& args, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// Runs a command with a time limit; returns its exit status and output.
int RunCommand(const std::string& cmd, std::string* output, int timeout_s = 240) {
  std::string full = "timeout " + std::to_string(timeout_s) + " " + cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  output->clear();
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class CliLiveTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("nanonas-live-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "state");
    // Two classes of 16x16 RGB PNGs: horizontal vs vertical stripes with some noise.
    cv::RNG rng(7);
    for (int cls = 0; cls < 2; ++cls) {
      fs::path d = dir_ / "images" / (cls == 0 ? "horizontal" : "vertical");
      fs::create_directories(d);
      for (int n = 0; n < 60; ++n) {
        cv::Mat img(16, 16, CV_8UC3);
        for (int y = 0; y < 16; ++y) {
          for (int x = 0; x < 16; ++x) {
            int on = ((cls == 0 ? y : x) + n) % 4 < 2;
            for (int ch = 0; ch < 3; ++ch) {
              img.at<cv::Vec3b>(y, x)[ch] =
                  static_cast<uchar>((on ? 200 : 40) + rng.uniform(-20, 20));
            }
          }
        }
        cv::imwrite((d / ("img" + std::to_string(n) + ".png")).string(), img);
      }
    }
    port_ = FreePort();
    server_ = "127.0.0.1:" + std::to_string(port_);
    coordinator_ =
        Spawn({COORDINATOR_BINARY, "--listen", server_, "--metrics-listen",
               "127.0.0.1:" + std::to_string(FreePort()), "--state-dir", (dir_ / "state").string()},
              (dir_ / "coordinator.log").string());
    worker_ = Spawn({WORKER_BINARY, "--coordinator", server_, "--metrics-listen",
                     "127.0.0.1:" + std::to_string(FreePort()), "--listen", "127.0.0.1:0",
                     "--cache-dir", (dir_ / "cache").string(), "--slots", "2"},
                    (dir_ / "worker.log").string());
    // Ready when ListJobs answers.
    auto stub = nanonas::v1::Coordinator::NewStub(
        grpc::CreateChannel(server_, grpc::InsecureChannelCredentials()));
    for (int i = 0; i < 100 && !ready_; ++i) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
      ctx.set_wait_for_ready(true);
      nanonas::v1::ListJobsResponse r;
      ready_ = stub->ListJobs(&ctx, nanonas::v1::ListJobsRequest(), &r).ok();
    }
  }
  static void TearDownTestSuite() {
    for (pid_t p : {worker_, coordinator_}) {
      if (p <= 0) continue;
      kill(p, SIGTERM);
      int status;
      for (int i = 0; i < 100 && waitpid(p, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      kill(p, SIGKILL);
      waitpid(p, &status, 0);
    }
    fs::remove_all(dir_);
  }
  void SetUp() override {
    ASSERT_TRUE(ready_) << "coordinator not ready:\n"
                        << ReadAll((dir_ / "coordinator.log").string());
  }
  std::string Logs() {
    return "\n--- coordinator ---\n" + ReadAll((dir_ / "coordinator.log").string()) +
           "\n--- worker ---\n" + ReadAll((dir_ / "worker.log").string());
  }

  static fs::path dir_;
  static int port_;
  static std::string server_;
  static pid_t coordinator_, worker_;
  static bool ready_;
};
fs::path CliLiveTest::dir_;
int CliLiveTest::port_ = 0;
std::string CliLiveTest::server_;
pid_t CliLiveTest::coordinator_ = -1, CliLiveTest::worker_ = -1;
bool CliLiveTest::ready_ = false;

const char kLimits[] = " --input 16x16x3 --ram 8KiB --flash 32KiB --epochs 1 ";

TEST_F(CliLiveTest, CliSubmitsWatchesAndGetsARealSearch) {
  std::string out;
  const std::string cli = std::string(CLI_BINARY) + " --server " + server_;
  ASSERT_EQ(RunCommand(cli + " submit " + (dir_ / "images").string() + kLimits +
                           "--skip-final --name cli-live --json",
                       &out),
            0)
      << out << Logs();
  size_t at = out.find("{\"job_id\": \"");
  ASSERT_NE(at, std::string::npos) << out;
  std::string job = out.substr(at + 12, out.find('"', at + 12) - at - 12);
  ASSERT_EQ(RunCommand(cli + " watch " + job, &out), 0) << out << Logs();
  EXPECT_THAT(out, HasSubstr("SUCCEEDED"));
  EXPECT_THAT(out, HasSubstr("result: k="));
  ASSERT_EQ(RunCommand(cli + " get " + job + " --json", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("\"state\":\"JOB_STATE_SUCCEEDED\""));
  EXPECT_THAT(out, HasSubstr("\"peak_memory_bytes\""));
  ASSERT_EQ(RunCommand(cli + " list --state succeeded", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr(job));
  EXPECT_EQ(RunCommand(cli + " get no-such-job", &out), 4) << out;
  EXPECT_EQ(RunCommand(cli + " health", &out), 0) << out;  // the coordinator's grpc.health.v1
  EXPECT_THAT(out, HasSubstr("SERVING"));
  EXPECT_EQ(RunCommand(cli + " submit " + (dir_ / "images").string() +
                           " --input 16x16x3 --ram 3KiB --variant 1999",
                       &out),
            2);
}

TEST_F(CliLiveTest, PythonExampleClientRunsASearch) {
  std::string out;
  std::string cmd = SYSTEM_PYTHON " " NANONAS_SOURCE_DIR
                                  "/client/python/nanonas_client_example.py"
                                  " --stubs " PYTHON_STUBS_DIR " --server " +
                    server_ + " " + (dir_ / "images").string() +
                    " --input 16x16x3 --ram 8192 --flash 32768 --epochs 1 --name py-live";
  ASSERT_EQ(RunCommand(cmd, &out), 0) << out << Logs();
  EXPECT_THAT(out, HasSubstr("JOB_STATE_SUCCEEDED"));
  EXPECT_THAT(out, HasSubstr("result k="));
}

}  // namespace
}  // namespace nanonas
