// The coordinator's metrics after a real (scripted) search on an injected clock: counts, queue
// waits, job and final-training durations, build info, bucket ranges; checked by promtool.
#include "server/coordinator/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "common/base/build_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
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

// The child of family `name` whose label `label` is `value` (any child when `label` is empty).
std::optional<prometheus::ClientMetric> Child(prometheus::Registry& registry,
                                              const std::string& name,
                                              const std::string& label = "",
                                              const std::string& value = "") {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      if (label.empty()) return m;
      for (const auto& l : m.label) {
        if (l.name == label && l.value == value) return m;
      }
    }
  }
  return std::nullopt;
}

// The largest finite bucket boundary of a histogram child.
double TopFiniteBound(const prometheus::ClientMetric& m) {
  double top = 0;
  for (const auto& b : m.histogram.bucket) {
    if (std::isfinite(b.upper_bound)) top = std::max(top, b.upper_bound);
  }
  return top;
}

// Observations counted in the finite buckets (the cumulative count of the top finite one).
uint64_t CountedInFiniteBuckets(const prometheus::ClientMetric& m) {
  uint64_t n = 0;
  for (const auto& b : m.histogram.bucket) {
    if (std::isfinite(b.upper_bound)) n = std::max(n, b.cumulative_count);
  }
  return n;
}

// A search of three trained candidates that stops on RAM and finds (1,1) (Flash 500 B: the
// final training must export 500 bytes), optionally followed by its final training.
v1::JobSpec ShortSpec(bool final_training) {
  v1::JobSpec spec = GoodSpec();
  spec.mutable_constraints()->set_ram_bytes(2500);  // (1,2) needs 3000: infeasible
  if (final_training) {
    spec.mutable_final_training()->set_skip(false);
    spec.mutable_final_training()->set_epochs(7);
  }
  return spec;
}

TEST(CoordinatorMetricsTest, CountsJobsCandidatesWorkersAndQueue) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  Harness h(nullptr, &metrics);
  v1::JobSpec spec = GoodSpec();
  spec.mutable_constraints()->set_ram_bytes(2500);  // (1,2) needs 3000: infeasible
  auto job = h.core->SubmitJob(spec);               // prepared at once by the fake preparer
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

TEST(CoordinatorMetricsTest, QueueWaitIsPendingToDispatchOnTheCoordinatorClock) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  Harness h(nullptr, &metrics);
  auto job = h.core->SubmitJob(ShortSpec(/*final_training=*/true));  // (1,0) PENDING, no worker
  ASSERT_TRUE(job.ok()) << job.status();
  h.now += absl::Seconds(90);
  h.AddWorker("w1");  // (1,0) dispatched after 90 s
  auto wait = Child(registry, "nanonas_queue_wait_seconds", "kind", "candidate");
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(wait->histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(wait->histogram.sample_sum, 90);
  FakeConnector::Complete(h.connector.Open()[0], 0.5);  // (1,1) dispatched at once
  FakeConnector::Complete(h.connector.Open()[0], 0.6);  // (2,0)
  h.now += absl::Seconds(10);
  FakeConnector::Complete(h.connector.Open()[0], 0.4);  // search ends: final training of (1,1)
  wait = Child(registry, "nanonas_queue_wait_seconds", "kind", "candidate");
  EXPECT_EQ(wait->histogram.sample_count, 3u);
  EXPECT_DOUBLE_EQ(wait->histogram.sample_sum, 90);
  auto final_wait = Child(registry, "nanonas_queue_wait_seconds", "kind", "final_training");
  ASSERT_TRUE(final_wait.has_value());
  EXPECT_EQ(final_wait->histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(final_wait->histogram.sample_sum, 0);
}

TEST(CoordinatorMetricsTest, JobAndFinalTrainingDurationsAreObservedAtTheEnd) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  Harness h(nullptr, &metrics);
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(ShortSpec(/*final_training=*/true));
  ASSERT_TRUE(job.ok()) << job.status();
  for (double accuracy : {0.5, 0.6, 0.4}) {
    h.now += absl::Seconds(100);
    FakeConnector::Complete(h.connector.Open()[0], accuracy);
  }
  auto open = h.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  ASSERT_TRUE(open[0]->request.final_training());
  h.now += absl::Seconds(1000);
  FakeConnector::CompleteFinal(open[0], 500, /*with_test=*/false);  // 9 s; Flash of (1,1)
  ASSERT_EQ(h.core->GetJob(job->id())->state(), v1::JOB_STATE_SUCCEEDED);

  auto succeeded = Child(registry, "nanonas_job_duration_seconds", "state", "succeeded");
  ASSERT_TRUE(succeeded.has_value());
  EXPECT_EQ(succeeded->histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(succeeded->histogram.sample_sum, 1300);  // submission to success
  EXPECT_EQ(
      Child(registry, "nanonas_job_duration_seconds", "state", "failed")->histogram.sample_count,
      0u);
  auto final_seconds = Child(registry, "nanonas_final_training_duration_seconds");
  ASSERT_TRUE(final_seconds.has_value());
  EXPECT_EQ(final_seconds->histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(final_seconds->histogram.sample_sum, 9);
  auto evaluated = Child(registry, "nanonas_job_candidates_evaluated");
  ASSERT_TRUE(evaluated.has_value());
  EXPECT_EQ(evaluated->histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(evaluated->histogram.sample_sum, 3);  // (1,0), (1,1), (2,0); 2 infeasible
}

TEST(CoordinatorMetricsTest, CancelledJobIsObservedByStateWithoutAWaitForItsQueuedCandidate) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  Harness h(nullptr, &metrics);
  auto job = h.core->SubmitJob(GoodSpec());  // (1,0) PENDING, no worker
  ASSERT_TRUE(job.ok()) << job.status();
  h.now += absl::Seconds(42);
  ASSERT_TRUE(h.core->CancelJob(job->id()).ok());
  h.AddWorker("w1");  // nothing to dispatch
  auto cancelled = Child(registry, "nanonas_job_duration_seconds", "state", "cancelled");
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(cancelled->histogram.sample_sum, 42);
  EXPECT_EQ(
      Child(registry, "nanonas_queue_wait_seconds", "kind", "candidate")->histogram.sample_count,
      0u);
  EXPECT_DOUBLE_EQ(Child(registry, "nanonas_job_candidates_evaluated")->histogram.sample_sum, 0);
}

TEST(CoordinatorMetricsTest, BuildInfoNamesVersionAndCommit) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  auto info = Child(registry, "nanonas_build_info");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->gauge.value, 1);
  std::map<std::string, std::string> labels;
  for (const auto& l : info->label) labels[l.name] = l.value;
  EXPECT_EQ(labels["version"], kBuildVersion);
  EXPECT_EQ(labels["commit"], kBuildCommit);
  EXPECT_FALSE(labels["version"].empty());
  EXPECT_FALSE(labels["commit"].empty());
}

// Each histogram's top finite bucket lies above the largest value this project produces, and such
// a value is counted in a finite bucket (not only in +Inf, which flattens every quantile).
TEST(CoordinatorMetricsTest, HistogramBucketsCoverTheMeasuredRange) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  metrics.ObserveEvaluationSeconds(30 * 60);  // the final training of a VWW-sized set
  auto eval = Child(registry, "nanonas_coordinator_evaluation_duration_seconds");
  ASSERT_TRUE(eval.has_value());
  EXPECT_GE(TopFiniteBound(*eval), 4 * 3600);  // hours
  EXPECT_EQ(CountedInFiniteBuckets(*eval), 1u);
  EXPECT_LE(eval->histogram.bucket.front().upper_bound, 0.5);

  Harness h(nullptr, &metrics);
  auto job = h.core->SubmitJob(ShortSpec(/*final_training=*/true));
  ASSERT_TRUE(job.ok()) << job.status();
  h.now += absl::Hours(3);  // queued behind other work for hours
  h.AddWorker("w1");
  for (double accuracy : {0.5, 0.6, 0.4}) FakeConnector::Complete(h.connector.Open()[0], accuracy);
  h.now += absl::Hours(20);  // a long final training: the job lasts about a day
  FakeConnector::CompleteFinal(h.connector.Open()[0], 500, /*with_test=*/false);
  ASSERT_EQ(h.core->GetJob(job->id())->state(), v1::JOB_STATE_SUCCEEDED);

  auto wait = Child(registry, "nanonas_queue_wait_seconds", "kind", "candidate");
  EXPECT_GE(TopFiniteBound(*wait), 6 * 3600);
  EXPECT_LE(wait->histogram.bucket.front().upper_bound, 0.01);
  EXPECT_EQ(CountedInFiniteBuckets(*wait), wait->histogram.sample_count);
  auto job_seconds = Child(registry, "nanonas_job_duration_seconds", "state", "succeeded");
  EXPECT_GE(TopFiniteBound(*job_seconds), 2 * 86400);
  EXPECT_EQ(CountedInFiniteBuckets(*job_seconds), 1u);
  EXPECT_GE(TopFiniteBound(*Child(registry, "nanonas_final_training_duration_seconds")), 4 * 3600);
  EXPECT_GE(TopFiniteBound(*Child(registry, "nanonas_job_candidates_evaluated")), 500);
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

TEST(CoordinatorMetricsTest, PreparingJobsAndDatasetPreparationsAreCounted) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  Harness h(nullptr, &metrics);
  h.preparer.hold = true;
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  auto call = h.preparer.calls[0];
  FakePreparer::Report(call, "sha256:" + Hex64('a'), 0, 300);
  std::string text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_jobs{state=\"preparing\"} 1"));
  h.preparer.Finish(call);
  text = Scrape(registry);
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_jobs{state=\"preparing\"} 0"));
  EXPECT_THAT(text, HasSubstr("nanonas_coordinator_jobs{state=\"running\"} 1"));
  EXPECT_THAT(text, HasSubstr("nanonas_dataset_prepared_images_total 300"));
  EXPECT_THAT(text,
              HasSubstr("nanonas_dataset_preparation_duration_seconds_count{reused=\"false\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("nanonas_dataset_preparation_duration_seconds_count{reused=\"true\"} 0"));
}

}  // namespace
}  // namespace nanonas::coordinator::testing
