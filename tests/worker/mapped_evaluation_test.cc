// A worker evaluates from the packed dataset file without loading it whole: the real
// `nanonas-worker --evaluate-child` under an EvaluationRunner maps its cached file (pixels shared,
// file-backed) so that its anonymous memory stays far below the dataset's size; and the child's
// memory estimate counts the pixels only where they are anonymous (a resized copy).
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/data/dataset.h"
#include "common/data/mapped.h"
#include "common/resources/host_memory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "worker/service/evaluation_child.h"
#include "worker/service/evaluation_runner.h"

namespace nanonas {
namespace {

namespace fs = std::filesystem;
namespace v1 = nanonas::v1;

// `n` images of h x w x 3 in 2 classes (horizontal vs vertical stripes, varied by image).
Dataset Stripes(int n, int h, int w) {
  Dataset d;
  d.shape = {h, w, 3};
  d.class_names = {"horizontal", "vertical"};
  d.images.resize(static_cast<size_t>(n) * h * w * 3);
  uint8_t* p = d.images.data();
  for (int i = 0; i < n; ++i) {
    const int cls = i % 2;
    d.labels.push_back(cls);
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const bool on = ((cls == 0 ? y : x) + i) % 4 < 2;
        for (int ch = 0; ch < 3; ++ch) *p++ = on ? 220 : uint8_t(30 + (i * 7 + ch) % 20);
      }
    }
  }
  return d;
}

// Writes `data` serialised to `path`; returns the file's size. Frees nothing of `data`.
int64_t WriteDataset(const Dataset& data, const std::string& path) {
  const std::string blob = SerializeDataset(data);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(blob.data(), static_cast<std::streamsize>(blob.size()));
  out.close();
  return out ? static_cast<int64_t>(blob.size()) : -1;
}

class MappedEvaluationTest : public testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);
    dir_ = fs::temp_directory_path() / ("nanonas-mapped-eval-test-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(MappedEvaluationTest, AWorkerEvaluatesFromThePackedFileWithoutLoadingItWhole) {
  // ~207 MB of pixels: 30,000 images of 48x48x3. Written into the cache folder under its content
  // hash (a file a previous run left), then freed: the test process holds none of it.
  std::string hex;
  int64_t file_bytes = 0;
  const fs::path cache_dir = dir_ / "cache";
  fs::create_directories(cache_dir);
  {
    const Dataset data = Stripes(30000, 48, 48);
    hex = ContentHash(data);
    file_bytes = WriteDataset(data, (cache_dir / ("sha256-" + hex + ".nnds")).string());
  }
  ASSERT_GT(file_bytes, 200'000'000);
  DatasetCache cache(cache_dir.string(), 1LL << 40);
  ASSERT_TRUE(cache.Init().ok());
  ASSERT_TRUE(cache.Contains("sha256:" + hex));

  EvaluationRunnerOptions options;
  options.child_command = {WORKER_BINARY, "--evaluate-child"};
  options.slots = 1;
  options.memory_budget_bytes = 512LL << 20;  // anonymous memory: the pixels alone are 207 MB
  options.rss_poll_ms = 10;
  EvaluationRunner runner(
      options, &cache,
      [](const std::string& id, const DatasetCache::ChunkSink&) {
        return absl::NotFoundError("the test serves no downloads: " + id);
      },
      nullptr);

  v1::EvaluateRequest request;
  request.set_job_id("job");
  request.set_evaluation_id("eval");
  request.set_dataset_id("sha256:" + hex);
  request.mutable_input()->set_height(48);
  request.mutable_input()->set_width(48);
  request.mutable_input()->set_channels(3);
  request.set_k(1);
  request.set_c(0);
  // Train on 10% (quick), validate on the rest: every image is read from the mapping.
  request.set_validation_split(0.9);
  request.mutable_settings()->set_epochs(1);
  request.mutable_settings()->set_batch_size(64);
  absl::StatusOr<v1::EvaluateResult> result = runner.Run(request, nullptr, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->state(), v1::CANDIDATE_STATE_DONE) << result->error();
  ASSERT_EQ(result->epochs_size(), 1);
  // Deserialising the file (the old way) needs its size in anonymous memory, twice while reading.
  EXPECT_GT(result->peak_anonymous_bytes(), 0);
  EXPECT_LT(result->peak_anonymous_bytes(), file_bytes / 2);
  // The pixels were all read, through the mapping: resident, but file-backed.
  EXPECT_GT(result->peak_memory_bytes(), file_bytes / 2);
}

TEST_F(MappedEvaluationTest, TheChildsEstimateCountsOnlyAnonymousPixels) {
  const std::string path = (dir_ / "d.nnds").string();
  int64_t pixel_bytes = 0;
  {
    const Dataset data = Stripes(4000, 32, 32);  // 12 MB of pixels
    pixel_bytes = data.pixel_bytes();
    ASSERT_GT(WriteDataset(data, path), 0);
  }
  TrainOptions options;
  options.batch_size = 32;
  CandidateSpec spec;
  spec.k = 4;
  spec.c = 1;
  spec.input = {32, 32, 3};
  spec.classes = 2;
  auto arch = BuildArchitecture(spec);
  ASSERT_TRUE(arch.ok());
  const HostTrainingOptions host{options.batch_size, options.threads};
  HostTrainingOptions mapped_host = host;
  mapped_host.dataset_mapped = true;

  // Mapped at the model's input: the pixels are not in the estimate.
  absl::StatusOr<Dataset> mapped = MapDatasetFile(path, false);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const int64_t mapped_estimate = EstimateChildAnonymousBytes(*arch, *mapped, *mapped, options);
  EXPECT_GE(mapped_estimate, EstimateHostTrainingBytes(*arch, pixel_bytes, mapped_host));
  EXPECT_LT(mapped_estimate, EstimateHostTrainingBytes(*arch, pixel_bytes, host));

  // Resized: the copy is anonymous, so counted.
  spec.input = {24, 24, 3};
  auto small = BuildArchitecture(spec);
  ASSERT_TRUE(small.ok());
  absl::StatusOr<Dataset> resized = ResizeDataset(*mapped, spec.input);
  ASSERT_TRUE(resized.ok());
  EXPECT_GE(EstimateChildAnonymousBytes(*small, *mapped, *resized, options),
            EstimateHostTrainingBytes(*small, resized->pixel_bytes(), host));

  // Decoded on the heap (DeserializeDataset): counted as well.
  std::ifstream in(path, std::ios::binary);
  absl::StatusOr<Dataset> owned =
      DeserializeDataset(std::string(std::istreambuf_iterator<char>(in), {}));
  ASSERT_TRUE(owned.ok());
  EXPECT_GE(EstimateChildAnonymousBytes(*arch, *owned, *owned, options),
            EstimateHostTrainingBytes(*arch, pixel_bytes, host));
}

}  // namespace
}  // namespace nanonas
