// The coordinator's metrics after a real (scripted) search, checked by promtool.
#include "server/coordinator/metrics.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::coordinator::testing {
namespace {

using ::testing::HasSubstr;

std::string Scrape(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

TEST(CoordinatorMetricsTest, CountsJobsCandidatesWorkersAndQueue) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  Harness h(nullptr, &metrics);
  v1::JobSpec spec = GoodSpec();
  spec.mutable_constraints()->set_ram_bytes(2500);  // (1,2) needs 3000: infeasible
  auto job = h.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok());
  std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_queue_depth 1"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_jobs{state=\"running\"} 1"));
  h.AddWorker("w1");
  text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_workers_connected 1"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_workers_busy 1"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_queue_depth 0"));
  FakeConnector::Complete(h.connector.Open()[0], 0.5);  // (1,0)
  FakeConnector::Complete(h.connector.Open()[0], 0.6);  // (1,1); (1,2) infeasible
  FakeConnector::Complete(h.connector.Open()[0], 0.4);  // (2,0); (2,1) infeasible -> stop
  text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_jobs{state=\"succeeded\"} 1"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_candidates_total{outcome=\"done\"} 3"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_candidates_total{outcome=\"infeasible\"} 2"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_evaluation_duration_seconds_count 3"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_workers_busy 0"));
}

TEST(CoordinatorMetricsTest, TextPassesPromtoolCheckMetrics) {
  if (std::system("command -v promtool > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  Harness h(nullptr, &metrics);
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  FakeConnector::Complete(h.connector.Open()[0], 0.5);
  metrics.CountWorkerLoss();
  const std::string path = ::testing::TempDir() + "/coordinator_metrics.txt";
  {
    std::ofstream out(path);
    out << Scrape(registry);
  }
  const std::string cmd = "promtool check metrics < " + path + " > " + path + ".out 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream result(path + ".out");
  std::stringstream ss;
  ss << result.rdbuf();
  EXPECT_EQ(rc, 0) << ss.str();
  EXPECT_EQ(ss.str(), "") << "promtool lint findings";
}

}  // namespace
}  // namespace nanonas::coordinator::testing
