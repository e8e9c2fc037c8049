// The worker's metrics: histogram buckets that cover what the workers measure (so quantiles are
// not flattened at the top bucket), evaluation counts by outcome, build info, promtool-clean text.
#include "worker/service/worker_metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "common/base/build_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace nanonas {
namespace {

std::optional<prometheus::ClientMetric> Child(prometheus::Registry& registry,
                                              const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name && !family.metric.empty()) return family.metric.front();
  }
  return std::nullopt;
}

double TopFiniteBound(const prometheus::ClientMetric& m) {
  double top = 0;
  for (const auto& b : m.histogram.bucket) {
    if (std::isfinite(b.upper_bound)) top = std::max(top, b.upper_bound);
  }
  return top;
}

uint64_t CountedInFiniteBuckets(const prometheus::ClientMetric& m) {
  uint64_t n = 0;
  for (const auto& b : m.histogram.bucket) {
    if (std::isfinite(b.upper_bound)) n = std::max(n, b.cumulative_count);
  }
  return n;
}

// Throughput measured here: ~3,000 img/s (big candidates at 50x50x3) to ~150,000 img/s ((1,0) at
// 28x28x1, 2 threads); the old top bucket of 32,000 put a third of the observations in +Inf.
TEST(WorkerMetricsTest, ThroughputBucketsReachHalfAMillionImagesPerSecond) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  for (double ips : {3000.0, 53000.0, 150000.0, 500000.0}) {
    metrics.RecordEvaluation("done", 10, ips, 100'000'000);
  }
  auto m = Child(registry, "nanonas_worker_training_images_per_second");
  ASSERT_TRUE(m.has_value());
  EXPECT_GT(TopFiniteBound(*m), 500000);
  EXPECT_LE(m->histogram.bucket.front().upper_bound, 500);
  EXPECT_EQ(m->histogram.sample_count, 4u);
  EXPECT_EQ(CountedInFiniteBuckets(*m), 4u);
  // 53,000 and 150,000 fall in different buckets: quantiles above 32,000 are resolved.
  auto bucket_of = [&](double v) {
    return std::find_if(m->histogram.bucket.begin(), m->histogram.bucket.end(),
                        [v](const auto& b) { return v <= b.upper_bound; }) -
           m->histogram.bucket.begin();
  };
  EXPECT_LT(bucket_of(53000), bucket_of(150000));
}

TEST(WorkerMetricsTest, DurationBucketsReachHours) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordEvaluation("done", 30 * 60, 5000, 0);  // VWW-sized final training
  metrics.RecordEvaluation("failed", 3 * 3600, 0, 0);  // a long one that failed
  auto m = Child(registry, "nanonas_worker_evaluation_duration_seconds");
  ASSERT_TRUE(m.has_value());
  EXPECT_GE(TopFiniteBound(*m), 4 * 3600);
  EXPECT_LE(m->histogram.bucket.front().upper_bound, 0.5);
  EXPECT_EQ(CountedInFiniteBuckets(*m), 2u);
}

TEST(WorkerMetricsTest, PeakMemoryBucketsReachEightGibibytes) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordEvaluation("done", 1, 1000, 32'000'000);
  metrics.RecordEvaluation("done", 1, 1000, int64_t{8} << 30);
  auto m = Child(registry, "nanonas_worker_evaluation_peak_memory_bytes");
  ASSERT_TRUE(m.has_value());
  EXPECT_GT(TopFiniteBound(*m), static_cast<double>(int64_t{8} << 30));
  EXPECT_LE(m->histogram.bucket.front().upper_bound, 32e6);
  EXPECT_EQ(CountedInFiniteBuckets(*m), 2u);
}

TEST(WorkerMetricsTest, RejectedEvaluationsAreCountedButNotTimed) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.RecordEvaluation("rejected", 5, 0, 0);
  metrics.RecordEvaluation("done", 5, 2000, 64'000'000);
  EXPECT_EQ(Child(registry, "nanonas_worker_evaluation_duration_seconds")->histogram.sample_count,
            1u);
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, registry.Collect());
  EXPECT_THAT(text.str(),
              ::testing::HasSubstr("nanonas_worker_evaluations_total{outcome=\"rejected\"} 1"));
  EXPECT_THAT(text.str(),
              ::testing::HasSubstr("nanonas_worker_evaluations_total{outcome=\"done\"} 1"));
}

TEST(WorkerMetricsTest, BuildInfoNamesVersionAndCommit) {
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  auto info = Child(registry, "nanonas_build_info");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->gauge.value, 1);
  std::map<std::string, std::string> labels;
  for (const auto& l : info->label) labels[l.name] = l.value;
  EXPECT_EQ(labels["version"], kBuildVersion);
  EXPECT_EQ(labels["commit"], kBuildCommit);
  EXPECT_FALSE(labels["commit"].empty());
}

TEST(WorkerMetricsTest, TextPassesPromtoolCheckMetrics) {
  if (std::system("command -v promtool > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  prometheus::Registry registry;
  WorkerMetrics metrics(registry);
  metrics.SetSlots(2);
  metrics.RecordEvaluation("done", 12, 150000, 200'000'000);
  metrics.RecordDatasetFetch("miss");
  const std::string path = ::testing::TempDir() + "/worker_metrics.txt";
  {
    std::ofstream out(path);
    prometheus::TextSerializer().Serialize(out, registry.Collect());
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
}  // namespace nanonas
