// `nanonas submit` against an in-process fake coordinator that fails on purpose: SubmitJob is
// retried with the same request_id on UNAVAILABLE and DEADLINE_EXCEEDED (never on
// INVALID_ARGUMENT), the upload is streamed again on UNAVAILABLE, and on a terminal the job is
// followed through its preparation.
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "client/cli.h"
#include "client/commands.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

namespace v1 = nanonas::v1;
using testing::HasSubstr;
using testing::Not;

// What the fake answers: SubmitJob and UploadDataset take their next scripted failure (OK when
// none is left); kHang makes a SubmitJob wait until the client gives up.
constexpr grpc::StatusCode kHang = static_cast<grpc::StatusCode>(-1);

class FlakyCoordinator final : public v1::Coordinator::Service {
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
    uploads.push_back(bytes);
    headers.push_back(header);
    if (!upload_failures.empty()) {
      const grpc::StatusCode code = upload_failures.front();
      upload_failures.pop_front();
      return grpc::Status(code, "scripted upload failure");
    }
    info->set_id("sha256:" + std::string(64, 'b'));
    info->set_num_images(3);
    return grpc::Status::OK;
  }

  grpc::Status SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req,
                         v1::SubmitJobResponse* resp) override {
    grpc::StatusCode code = grpc::StatusCode::OK;
    std::string job_id;
    {
      std::lock_guard<std::mutex> lock(mu);
      requests.push_back(*req);
      if (!submit_failures.empty()) {
        code = submit_failures.front();
        submit_failures.pop_front();
      }
      // Idempotent like the real coordinator: one job per request_id, made on the first call.
      auto [it, added] = jobs.emplace(req->request_id(), "");
      if (added) it->second = "job-" + std::to_string(requests.size());
      job_id = it->second;
    }
    if (code == kHang) {
      while (!ctx->IsCancelled()) {  // until the client's deadline passes
        std::unique_lock<std::mutex> lock(mu);
        cancelled.wait_for(lock, std::chrono::milliseconds(5));
      }
      return grpc::Status(grpc::StatusCode::CANCELLED, "client gave up");
    }
    if (code != grpc::StatusCode::OK) return grpc::Status(code, "scripted submit failure");
    resp->set_job_id(job_id);
    return grpc::Status::OK;
  }

  // The job goes QUEUED -> PREPARING (0, 50, 100 of 100 images) -> RUNNING, or FAILED while
  // preparing when `fail_preparation`.
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobEvent>* w) override {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++watches;
    }
    v1::JobEvent e;
    e.set_sequence(1);
    e.mutable_job()->set_id(req->job_id());
    e.mutable_job()->set_state(v1::JOB_STATE_QUEUED);
    w->Write(e);
    e.Clear();
    e.set_sequence(2);
    e.set_job_state(v1::JOB_STATE_PREPARING);
    w->Write(e);
    for (int done : {0, 50, 100}) {
      e.Clear();
      e.mutable_preparation()->set_images_done(done);
      e.mutable_preparation()->set_images_total(100);
      e.mutable_preparation()->set_seconds(done / 50.0);
      w->Write(e);
    }
    e.Clear();
    e.set_sequence(3);
    e.set_job_state(fail_preparation ? v1::JOB_STATE_FAILED : v1::JOB_STATE_RUNNING);
    e.mutable_job()->set_id(req->job_id());
    e.mutable_job()->set_state(e.job_state());
    if (fail_preparation) e.mutable_job()->set_error("3 images could not be decoded");
    w->Write(e);
    return grpc::Status::OK;
  }

  std::mutex mu;
  std::condition_variable cancelled;
  std::deque<grpc::StatusCode> submit_failures, upload_failures;
  std::vector<v1::SubmitJobRequest> requests;
  std::map<std::string, std::string> jobs;  // request_id -> job id
  std::vector<std::string> uploads;
  std::vector<v1::UploadHeader> headers;
  int watches = 0;
  bool fail_preparation = false;
};

class SubmitTest : public testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&fake_);
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_);
    dir_ = std::filesystem::temp_directory_path() /
           ("nanonas-submit-test-" + std::to_string(getpid())) / "pets";
    std::filesystem::remove_all(dir_.parent_path());
    std::filesystem::create_directories(dir_ / "cats");
    std::filesystem::create_directories(dir_ / "dogs");
    std::ofstream(dir_ / "cats" / "a.png") << std::string(3000, 'a');
    std::ofstream(dir_ / "dogs" / "b.png") << "bbb";
  }
  void TearDown() override {
    server_->Shutdown();
    std::filesystem::remove_all(dir_.parent_path());
  }

  // `nanonas submit` with fast retries; `terminal`: stderr is a terminal.
  int Submit(std::vector<std::string> extra, bool terminal = false) {
    out_.str("");
    err_.str("");
    std::vector<std::string> args = {"submit", dir_.string(), "--ram", "40KiB"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto cmd = ParseCommandLine(args, ("127.0.0.1:" + std::to_string(port_)).c_str());
    EXPECT_TRUE(cmd.ok()) << cmd.status();
    Cli cli(v1::Coordinator::NewStub(MakeChannel(cmd->global.server)), cmd->global, out_, err_,
            /*interactive=*/false, terminal);
    RetryPolicy fast;
    fast.first_backoff = std::chrono::milliseconds(1);
    cli.set_retry_policy(fast);
    return cli.Run(*cmd);
  }

  std::vector<std::string> RequestIds() {
    std::lock_guard<std::mutex> lock(fake_.mu);
    std::vector<std::string> ids;
    for (const auto& r : fake_.requests) ids.push_back(r.request_id());
    return ids;
  }

  FlakyCoordinator fake_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::filesystem::path dir_;
  std::ostringstream out_, err_;
};

TEST_F(SubmitTest, UnavailableIsRetriedWithTheSameRequestIdAndMakesOneJob) {
  fake_.submit_failures = {grpc::StatusCode::UNAVAILABLE};
  ASSERT_EQ(Submit({"--json"}), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "{\"job_id\": \"job-1\"}\n");  // the job the first request made
  const std::vector<std::string> ids = RequestIds();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_THAT(ids[0], testing::MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(err_.str(), "");  // --json: nothing on stderr
  {
    std::lock_guard<std::mutex> lock(fake_.mu);
    EXPECT_EQ(fake_.jobs.size(), 1u);
  }
  // Another invocation is another intended job: another id. Without --json the retry is said.
  fake_.submit_failures = {grpc::StatusCode::UNAVAILABLE};
  ASSERT_EQ(Submit({}), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "job-3\n");
  EXPECT_THAT(err_.str(), HasSubstr("server unavailable (scripted submit failure); retrying"));
  const std::vector<std::string> all = RequestIds();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2], all[3]);
  EXPECT_NE(all[2], all[0]);
}

TEST_F(SubmitTest, ASubmitThatOutlivesItsDeadlineIsRetriedAndPrintsTheSecondAnswer) {
  fake_.submit_failures = {kHang};
  ASSERT_EQ(Submit({"--timeout", "0.2"}), kExitOk) << err_.str();
  EXPECT_THAT(err_.str(), HasSubstr("no answer in time; retrying"));
  EXPECT_EQ(out_.str(), "job-1\n");
  const std::vector<std::string> ids = RequestIds();
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_FALSE(ids[0].empty());
}

TEST_F(SubmitTest, AScriptedDeadlineExceededIsRetriedToo) {
  fake_.submit_failures = {grpc::StatusCode::DEADLINE_EXCEEDED,
                           grpc::StatusCode::DEADLINE_EXCEEDED};
  ASSERT_EQ(Submit({"--json"}), kExitOk) << err_.str();
  EXPECT_EQ(RequestIds().size(), 3u);
}

TEST_F(SubmitTest, AnInvalidRequestIsNotRetried) {
  fake_.submit_failures = {grpc::StatusCode::INVALID_ARGUMENT};
  EXPECT_EQ(Submit({}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("rejected by the server: scripted submit failure"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("retrying")));
  EXPECT_EQ(RequestIds().size(), 1u);
  EXPECT_EQ(out_.str(), "");
}

TEST_F(SubmitTest, RetriesStopAfterFiveAttempts) {
  fake_.submit_failures.assign(10, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Submit({}), kExitServer);
  EXPECT_EQ(RequestIds().size(), 5u);
  EXPECT_EQ(out_.str(), "");
}

TEST_F(SubmitTest, AnInterruptedUploadIsStreamedAgain) {
  fake_.upload_failures = {grpc::StatusCode::UNAVAILABLE};
  ASSERT_EQ(Submit({}), kExitOk) << err_.str();
  EXPECT_THAT(err_.str(), HasSubstr("interrupted (scripted upload failure); sending it again"));
  std::lock_guard<std::mutex> lock(fake_.mu);
  ASSERT_EQ(fake_.uploads.size(), 2u);
  EXPECT_EQ(fake_.uploads[0], fake_.uploads[1]);
  // The header announces the exact archive size; the server computes the digest.
  EXPECT_EQ(fake_.headers[1].size_bytes(), static_cast<int64_t>(fake_.uploads[1].size()));
  EXPECT_EQ(fake_.headers[1].format(), "tar");
  EXPECT_TRUE(fake_.headers[1].sha256().empty());
  ASSERT_EQ(fake_.requests.size(), 1u);
  EXPECT_EQ(fake_.requests[0].spec().dataset_id(), "sha256:" + std::string(64, 'b'));
}

TEST_F(SubmitTest, AnUploadRejectedAsInvalidIsNotRetried) {
  fake_.upload_failures = {grpc::StatusCode::INVALID_ARGUMENT};
  EXPECT_EQ(Submit({}), kExitUsage);
  std::lock_guard<std::mutex> lock(fake_.mu);
  EXPECT_EQ(fake_.uploads.size(), 1u);
  EXPECT_TRUE(fake_.requests.empty());
}

TEST_F(SubmitTest, OnATerminalTheUploadAndThePreparationAreShownInPlace) {
  ASSERT_EQ(Submit({}, /*terminal=*/true), kExitOk) << err_.str();
  EXPECT_EQ(out_.str(), "job-1\n");
  const std::string err = err_.str();
  EXPECT_THAT(err, HasSubstr("\ruploading pets: "));
  EXPECT_THAT(err, HasSubstr("\ruploaded pets: "));
  EXPECT_THAT(err, HasSubstr("\rpreparing pets: "));
  EXPECT_THAT(err, HasSubstr("prepared pets: 100 images in 2s\033[K\n"));
  EXPECT_THAT(err, testing::EndsWith("follow it: nanonas watch job-1\n"));
  std::lock_guard<std::mutex> lock(fake_.mu);
  EXPECT_EQ(fake_.watches, 1);
}

TEST_F(SubmitTest, AJobThatFailsWhilePreparingExitsOneWithItsError) {
  fake_.fail_preparation = true;
  EXPECT_EQ(Submit({}, /*terminal=*/true), kExitJobFailed);
  EXPECT_EQ(out_.str(), "job-1\n");
  EXPECT_THAT(err_.str(), HasSubstr("job job-1 FAILED: 3 images could not be decoded"));
}

TEST_F(SubmitTest, WithoutATerminalOrWithJsonTheJobIsNotFollowed) {
  ASSERT_EQ(Submit({}), kExitOk);
  EXPECT_THAT(err_.str(), Not(HasSubstr("\r")));
  ASSERT_EQ(Submit({"--json"}, /*terminal=*/true), kExitOk);
  EXPECT_EQ(err_.str(), "");
  std::lock_guard<std::mutex> lock(fake_.mu);
  EXPECT_EQ(fake_.watches, 0);
}

TEST(SubmitChannelTest, KeepaliveIsOnWithoutTrippingADefaultServersPingLimit) {
  grpc::ChannelArguments args = ClientChannelArguments();
  grpc_channel_args c = args.c_channel_args();
  std::map<std::string, int> ints;
  for (size_t i = 0; i < c.num_args; ++i) {
    if (c.args[i].type == GRPC_ARG_INTEGER) ints[c.args[i].key] = c.args[i].value.integer;
  }
  ASSERT_EQ(ints.count(GRPC_ARG_KEEPALIVE_TIME_MS), 1u);
  EXPECT_GE(ints[GRPC_ARG_KEEPALIVE_TIME_MS], 300 * 1000);  // grpc's default server minimum
  EXPECT_GT(ints[GRPC_ARG_KEEPALIVE_TIMEOUT_MS], 0);
  EXPECT_EQ(ints[GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA], 0);  // also on a silent watch
}

TEST(SubmitRetryTest, BackoffDoublesAndIdsDiffer) {
  RetryPolicy p;
  EXPECT_EQ(RetryBackoff(p, 1), std::chrono::milliseconds(500));
  EXPECT_EQ(RetryBackoff(p, 2), std::chrono::milliseconds(1000));
  EXPECT_EQ(RetryBackoff(p, 4), std::chrono::milliseconds(4000));
  EXPECT_TRUE(IsRetryableSubmit(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(IsRetryableSubmit(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_FALSE(IsRetryableSubmit(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_FALSE(IsRetryableSubmit(grpc::StatusCode::FAILED_PRECONDITION));
  EXPECT_NE(NewRequestId(), NewRequestId());
}

}  // namespace
}  // namespace nanonas
