// The web view's HTTP server on loopback: pages, embedded static files, the API's status codes and
// a streamed artifact download, read with cpp-httplib's client.
#include "server/web/web_server.h"

#include <httplib.h>

#include <map>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/web/assets.h"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::web {
namespace {

namespace v1 = nanonas::v1;
using coordinator::testing::FakeConnector;
using coordinator::testing::GoodSpec;
using coordinator::testing::Harness;
using ::testing::HasSubstr;
using ::testing::Not;

class WebServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WebApiOptions options;
    options.chunk_bytes = 128;  // downloads take several chunks
    api_ = std::make_unique<WebApi>(h_.core.get(), nullptr, options);
    server_ = std::make_unique<WebServer>(api_.get());
    auto port = server_->Start("127.0.0.1:0");
    ASSERT_TRUE(port.ok()) << port.status();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", *port);
  }
  void TearDown() override { server_->Stop(); }

  Harness h_;
  std::unique_ptr<WebApi> api_;
  std::unique_ptr<WebServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(WebServerTest, PagesAreTheEmbeddedAppWithAStrictSecurityPolicy) {
  for (const std::string path : {"/", "/jobs/job-1", "/workers", "/datasets"}) {
    auto res = client_->Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path;
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
    EXPECT_THAT(res->body, HasSubstr("<script src=\"/static/app.js\"></script>"));
    EXPECT_THAT(res->get_header_value("Content-Security-Policy"), HasSubstr("script-src 'self'"));
  }
  auto js = client_->Get("/static/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  const EmbeddedAsset* asset = FindAsset("/static/app.js");
  ASSERT_NE(asset, nullptr);
  EXPECT_EQ(js->body, std::string(asset->data, asset->size)) << "served byte for byte";
  EXPECT_THAT(js->body, Not(HasSubstr("innerHTML"))) << "user data goes in as text only";
  auto css = client_->Get("/static/style.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->get_header_value("Content-Type"), "text/css; charset=utf-8");
  for (const std::string path : {"/static/missing.js", "/jobs/a/b", "/etc/passwd"}) {
    auto res = client_->Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 404) << path;
  }
}

TEST_F(WebServerTest, ApiAnswersJsonWithItsStatusCodes) {
  auto job = h_.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  auto list = client_->Get("/api/v1/jobs?state=running");
  ASSERT_TRUE(list);
  EXPECT_EQ(list->status, 200);
  EXPECT_EQ(list->get_header_value("Content-Type"), "application/json");
  EXPECT_THAT(list->body, HasSubstr(job->id()));
  auto bad = client_->Get("/api/v1/jobs?state=sleepy");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_THAT(bad->body, HasSubstr("INVALID_ARGUMENT"));
  auto missing = client_->Get("/api/v1/jobs/no-such-job");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_THAT(missing->body, HasSubstr("no-such-job"));
}

TEST_F(WebServerTest, ArtifactDownloadStreamsTheFileAsAnAttachment) {
  h_.AddWorker("w1");
  v1::JobSpec spec = GoodSpec();
  spec.mutable_final_training()->set_skip(false);
  spec.mutable_constraints()->set_ram_bytes(1000);  // only (1, 0) fits: a one-candidate search
  auto job = h_.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  std::shared_ptr<FakeConnector::Call> final_call;
  for (int guard = 0; guard < 20 && final_call == nullptr; ++guard) {
    auto open = h_.connector.Open();
    ASSERT_FALSE(open.empty());
    if (open[0]->request.final_training()) {
      final_call = open[0];
    } else {
      FakeConnector::Complete(open[0], 0.5);
    }
  }
  ASSERT_NE(final_call, nullptr);
  constexpr int64_t kBytes = 500;  // the harness's Flash figure of (1, 0): 4 chunks
  FakeConnector::CompleteFinal(final_call, kBytes, false);
  auto res = client_->Get("/api/v1/jobs/" + job->id() + "/artifacts/model.tflite");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  auto want = h_.core->ReadArtifact(job->id(), "model.tflite", 0, 1 << 30);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(res->body.size(), static_cast<size_t>(kBytes));
  EXPECT_EQ(res->body, *want);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/octet-stream");
  EXPECT_EQ(res->get_header_value("Content-Disposition"), "attachment; filename=\"model.tflite\"");
  EXPECT_EQ(res->get_header_value("Content-Length"), std::to_string(kBytes));
}

TEST_F(WebServerTest, StopDoesNotWaitForPendingLongPolls) {
  auto job = h_.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  auto first = client_->Get("/api/v1/jobs/" + job->id() + "/events");
  ASSERT_TRUE(first);
  const auto body = nlohmann::json::parse(first->body);
  std::thread poller([&] {
    httplib::Client c = std::move(*client_);
    c.set_read_timeout(30, 0);
    c.Get("/api/v1/jobs/" + job->id() +
          "/events?wait_ms=10000&sequence=" + std::to_string(body["sequence"].get<int64_t>()) +
          "&progress=" + std::to_string(body["progress"].get<uint64_t>()));
  });
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time before = absl::Now();
  server_->Stop();
  EXPECT_LT(absl::Now() - before, absl::Seconds(5));
  poller.join();
}

TEST(WebServerPortTest, ASecondServerCannotTakeAPortInUse) {
  Harness h;
  WebApi api(h.core.get(), nullptr);
  WebServer first(&api);
  auto port = first.Start("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  WebServer second(&api);
  auto again = second.Start("127.0.0.1:" + std::to_string(*port));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnavailable)
      << "two coordinators must not share (and split) one web port";
}

TEST(ParseHostPortTest, AcceptsHostPortAndRefusesTheRest) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(ParseHostPort("127.0.0.1:8080", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8080);
  ASSERT_TRUE(ParseHostPort("[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  for (const std::string bad : {"8080", ":8080", "host:", "host:http", "host:70000", "host:-1"}) {
    EXPECT_EQ(ParseHostPort(bad, &host, &port).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace nanonas::web
