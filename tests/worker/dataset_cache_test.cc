#include "worker/service/dataset_cache.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

namespace fs = std::filesystem;

// Folders made by TempDir(), removed when the test program ends.
struct TempDirs : testing::Environment {
  std::vector<fs::path> made;
  void TearDown() override {
    for (const auto& p : made) fs::remove_all(p);
  }
};
TempDirs* const temp_dirs = static_cast<TempDirs*>(testing::AddGlobalTestEnvironment(new TempDirs));

std::string TempDir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("nanonas-cache-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(p);
  temp_dirs->made.push_back(p);
  return p.string();
}

struct FakeServer {
  std::map<std::string, std::string> blobs;  // id -> bytes
  int fetches = 0;
  std::string Add(const std::string& bytes) {
    std::string id = "sha256:" + Sha256Hex(bytes);
    blobs[id] = bytes;
    return id;
  }
  DatasetCache::Fetcher fetcher() {
    return [this](const std::string& id) -> absl::StatusOr<std::string> {
      ++fetches;
      auto it = blobs.find(id);
      if (it == blobs.end()) return absl::NotFoundError("no dataset " + id);
      return it->second;
    };
  }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(WorkerDatasetCacheTest, FetchesOnceThenServesFromDisk) {
  FakeServer server;
  std::string id = server.Add(std::string(100, 'x'));
  DatasetCache cache(TempDir("once"), 1000);
  ASSERT_TRUE(cache.Init().ok());
  {
    auto lease = cache.Get(id, server.fetcher());
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_EQ(ReadFile((*lease)->path()), std::string(100, 'x'));
  }
  auto again = cache.Get(id, server.fetcher());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(server.fetches, 1);
  EXPECT_EQ(cache.hits(), 1);
  EXPECT_EQ(cache.misses(), 1);
}

TEST(WorkerDatasetCacheTest, RejectsBytesThatDoNotMatchTheHash) {
  FakeServer server;
  std::string id = server.Add("genuine");
  server.blobs[id] = "tampered";
  DatasetCache cache(TempDir("tamper"), 1000);
  ASSERT_TRUE(cache.Init().ok());
  auto lease = cache.Get(id, server.fetcher());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(lease.status().message()), testing::HasSubstr("does not match"));
  EXPECT_FALSE(cache.Contains(id));
}

TEST(WorkerDatasetCacheTest, AcceptsWhatTheVerifierVouchesFor) {
  std::string hex(64, 'c');
  DatasetCache cache(TempDir("verifier"), 1000,
                     [&](const std::string& h, const std::string& bytes) {
                       return h == hex && bytes == "decoded-dataset";
                     });
  ASSERT_TRUE(cache.Init().ok());
  auto ok = cache.Get("sha256:" + hex, [](const std::string&) -> absl::StatusOr<std::string> {
    return std::string("decoded-dataset");
  });
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(WorkerDatasetCacheTest, EvictsLeastRecentlyUsedBeyondTheBound) {
  FakeServer server;
  std::string a = server.Add(std::string(100, 'a'));
  std::string b = server.Add(std::string(100, 'b'));
  std::string c = server.Add(std::string(100, 'c'));
  DatasetCache cache(TempDir("lru"), 250);
  ASSERT_TRUE(cache.Init().ok());
  ASSERT_TRUE(cache.Get(a, server.fetcher()).ok());
  ASSERT_TRUE(cache.Get(b, server.fetcher()).ok());
  ASSERT_TRUE(cache.Get(a, server.fetcher()).ok());  // a is now more recent than b
  ASSERT_TRUE(cache.Get(c, server.fetcher()).ok());
  EXPECT_TRUE(cache.Contains(a));
  EXPECT_FALSE(cache.Contains(b));
  EXPECT_TRUE(cache.Contains(c));
  EXPECT_LE(cache.size_bytes(), 250);
}

TEST(WorkerDatasetCacheTest, NeverEvictsADatasetInUse) {
  FakeServer server;
  std::string a = server.Add(std::string(200, 'a'));
  std::string b = server.Add(std::string(200, 'b'));
  DatasetCache cache(TempDir("pinned"), 250);
  ASSERT_TRUE(cache.Init().ok());
  auto lease_a = cache.Get(a, server.fetcher());
  ASSERT_TRUE(lease_a.ok());
  auto lease_b = cache.Get(b, server.fetcher());
  ASSERT_TRUE(lease_b.ok());
  EXPECT_TRUE(fs::exists((*lease_a)->path()));  // over the bound while both are leased
  lease_a->reset();
  EXPECT_FALSE(cache.Contains(a));  // released: evicted as the least recently used
  EXPECT_TRUE(cache.Contains(b));
}

TEST(WorkerDatasetCacheTest, PicksUpFilesFromAPreviousRun) {
  FakeServer server;
  std::string a = server.Add("persisted");
  std::string dir = TempDir("restart");
  {
    DatasetCache cache(dir, 1000);
    ASSERT_TRUE(cache.Init().ok());
    ASSERT_TRUE(cache.Get(a, server.fetcher()).ok());
  }
  DatasetCache cache(dir, 1000);
  ASSERT_TRUE(cache.Init().ok());
  EXPECT_TRUE(cache.Contains(a));
  EXPECT_EQ(cache.size_bytes(), 9);
  ASSERT_TRUE(cache.Get(a, server.fetcher()).ok());
  EXPECT_EQ(server.fetches, 1);
}

TEST(WorkerDatasetCacheTest, ReportsFetchErrors) {
  FakeServer server;
  DatasetCache cache(TempDir("missing"), 1000);
  ASSERT_TRUE(cache.Init().ok());
  auto lease = cache.Get("sha256:" + std::string(64, '0'), server.fetcher());
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kNotFound);
}

TEST(WorkerDatasetCacheTest, RejectsANonPositiveBound) {
  DatasetCache cache(TempDir("zero"), 0);
  EXPECT_EQ(cache.Init().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nanonas
