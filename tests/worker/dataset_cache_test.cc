#include "worker/service/dataset_cache.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "common/data/dataset.h"
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
  // Streams the blob in chunks of `chunk` bytes, as the coordinator's FetchDataset does.
  DatasetCache::Fetcher fetcher(size_t chunk = 7) {
    return [this, chunk](const std::string& id, const DatasetCache::ChunkSink& sink) {
      ++fetches;
      auto it = blobs.find(id);
      if (it == blobs.end()) return absl::NotFoundError("no dataset " + id);
      const std::string& bytes = it->second;
      for (size_t off = 0; off < bytes.size(); off += chunk) {
        absl::Status s = sink(absl::string_view(bytes).substr(off, chunk));
        if (!s.ok()) return s;
      }
      return absl::OkStatus();
    };
  }
};

// The files in a cache folder (entries and temp files alike).
std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& de : fs::directory_iterator(dir)) names.push_back(de.path().filename());
  return names;
}

// A dataset blob of `n` images, as the coordinator serves it.
std::string DatasetBlob(int n) {
  Dataset d;
  d.shape = {8, 8, 3};
  d.class_names = {"a", "b"};
  for (int i = 0; i < n; ++i) {
    d.labels.push_back(i % 2);
    for (int b = 0; b < 8 * 8 * 3; ++b) d.images.push_back(uint8_t(i * 31 + b));
  }
  return SerializeDataset(d);
}

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
                     [&](const std::string& h, const DatasetCache::Fetched& f) {
                       return h == hex && f.size == 15 && ReadFile(f.path) == "decoded-dataset";
                     });
  ASSERT_TRUE(cache.Init().ok());
  auto ok = cache.Get("sha256:" + hex, [](const std::string&, const DatasetCache::ChunkSink& sink) {
    return sink("decoded-dataset");
  });
  EXPECT_TRUE(ok.ok()) << ok.status();
}

TEST(WorkerDatasetCacheTest, StreamsADatasetBiggerThanOneChunkByItsContentHash) {
  // The coordinator names a decoded dataset by ContentHash: SHA-256 of the blob but its 4-byte
  // CRC trailer. The cache hashes the stream as it arrives, holding back the last 4 bytes.
  const std::string blob = DatasetBlob(300);  // ~58 KB
  absl::StatusOr<Dataset> decoded = DeserializeDataset(blob);
  ASSERT_TRUE(decoded.ok());
  const std::string hex = ContentHash(*decoded);
  ASSERT_EQ(hex, Sha256Hex(blob.substr(0, blob.size() - 4)));
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{4096}, size_t{5000}}) {
    FakeServer server;
    server.blobs["sha256:" + hex] = blob;
    std::vector<DatasetCache::Fetched> seen;
    DatasetCache cache(TempDir("stream" + std::to_string(chunk)), 1 << 20,
                       [&](const std::string& h, const DatasetCache::Fetched& f) {
                         seen.push_back(f);
                         return f.body_sha256 == h;
                       });
    ASSERT_TRUE(cache.Init().ok());
    auto lease = cache.Get("sha256:" + hex, server.fetcher(chunk));
    ASSERT_TRUE(lease.ok()) << lease.status() << " chunk " << chunk;
    EXPECT_EQ(ReadFile((*lease)->path()), blob);
    EXPECT_EQ((*lease)->size_bytes(), static_cast<int64_t>(blob.size()));
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].sha256, Sha256Hex(blob));
    EXPECT_EQ(seen[0].size, static_cast<int64_t>(blob.size()));
  }
}

TEST(WorkerDatasetCacheTest, ACorruptedStreamIsDataLossAndLeavesNoFile) {
  std::string blob = DatasetBlob(300);
  const std::string hex = Sha256Hex(blob.substr(0, blob.size() - 4));
  blob[blob.size() / 2] ^= 0x10;
  FakeServer server;
  server.blobs["sha256:" + hex] = blob;
  const std::string dir = TempDir("corrupt");
  DatasetCache cache(dir, 1 << 20, [](const std::string& h, const DatasetCache::Fetched& f) {
    return f.body_sha256 == h;
  });
  ASSERT_TRUE(cache.Init().ok());
  auto lease = cache.Get("sha256:" + hex, server.fetcher(4096));
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(cache.Contains("sha256:" + hex));
  EXPECT_THAT(FilesIn(dir), testing::IsEmpty());
  EXPECT_EQ(cache.size_bytes(), 0);
}

TEST(WorkerDatasetCacheTest, AFetchThatFailsMidStreamLeavesNoFile) {
  const std::string dir = TempDir("cut");
  DatasetCache cache(dir, 1 << 20);
  ASSERT_TRUE(cache.Init().ok());
  auto lease = cache.Get("sha256:" + std::string(64, 'a'),
                         [](const std::string&, const DatasetCache::ChunkSink& sink) {
                           absl::Status s = sink(std::string(5000, 'x'));
                           if (!s.ok()) return s;
                           return absl::UnavailableError("coordinator went away");
                         });
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(FilesIn(dir), testing::IsEmpty());
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
