// A size-bounded on-disk cache of datasets, named by content hash ("sha256:<64 hex>").
//
// Entries are files <dir>/sha256-<hex>.nnds written atomically (temp file + rename) after the
// fetched bytes are verified against the id. A fetch streams: each chunk goes to the temp file
// and into the digests as it arrives, so the cache never holds a whole dataset in memory. Least
// recently used entries are evicted to keep the total under max_bytes; entries leased by running
// evaluations are never evicted (so the total may exceed the bound while a dataset larger than it
// is in use). Files left in the folder by a previous process are picked up at Init() (LRU order by
// modification time).
//
// Thread-safe.
#ifndef NANONAS_WORKER_SERVICE_DATASET_CACHE_H_
#define NANONAS_WORKER_SERVICE_DATASET_CACHE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/api/dataset_id.h"  // DatasetIdHex: ids -> the hex in file names
#include "common/base/sha256.h"     // Sha256Hex: the digest the cache verifies

namespace nanonas {

class DatasetCache {
 public:
  // Receives the next chunk of the dataset's bytes; an error (e.g. the disk is full) asks the
  // fetcher to stop and return it.
  using ChunkSink = std::function<absl::Status(absl::string_view chunk)>;
  // Streams the dataset bytes for an id, in order, into `sink` (e.g. the coordinator's
  // FetchDataset stream); returns OK when all were delivered, else the error (the sink's, if it
  // failed).
  using Fetcher = std::function<absl::Status(const std::string& id, const ChunkSink& sink)>;

  // What the cache knows of a fetched stream once it ends, for the Verifier.
  struct Fetched {
    std::string path;         // the complete temp file (not yet in the cache)
    int64_t size = 0;         // bytes
    std::string sha256;       // hex SHA-256 of all the bytes
    std::string body_sha256;  // hex SHA-256 of all but the last 4 bytes ("" when fewer than 4):
                              // ContentHash's form for a SerializeDataset blob (dataset.h)
  };
  // Extra accepted proof of identity besides sha256 == the id's hex (e.g. body_sha256 == hex and
  // the file at `path` is a valid dataset: MapDatasetFile(path, true)). May be null.
  using Verifier = std::function<bool(const std::string& hex, const Fetched& fetched)>;

  // A pinned entry: the file stays while the lease lives.
  class Lease {
   public:
    ~Lease();
    const std::string& path() const { return path_; }
    int64_t size_bytes() const { return size_; }

   private:
    friend class DatasetCache;
    Lease(DatasetCache* cache, std::string hex, std::string path, int64_t size)
        : cache_(cache), hex_(std::move(hex)), path_(std::move(path)), size_(size) {}
    DatasetCache* cache_;
    std::string hex_, path_;
    int64_t size_;
  };

  DatasetCache(std::string dir, int64_t max_bytes, Verifier verifier = nullptr);

  // Creates the folder and indexes the files already there. INVALID_ARGUMENT when max_bytes <= 0,
  // FAILED_PRECONDITION when the folder cannot be created or written.
  absl::Status Init();

  // The cached file for `id`, fetching and verifying it on a miss (no file is left when the
  // fetch fails or the bytes do not match). Errors: INVALID_ARGUMENT (bad id), DATA_LOSS (fetched
  // bytes do not match the id), the fetcher's error, INTERNAL (disk).
  // REQUIRES: the returned lease is destroyed before the cache.
  absl::StatusOr<std::unique_ptr<Lease>> Get(const std::string& id, const Fetcher& fetch);

  // Checks a fetched stream against the id: its SHA-256, or the verifier. DATA_LOSS otherwise.
  absl::Status Verify(const std::string& hex, const Fetched& fetched) const;

  bool Contains(const std::string& id) const;
  int64_t size_bytes() const;
  int64_t max_bytes() const { return max_bytes_; }
  int64_t hits() const;
  int64_t misses() const;

 private:
  struct Entry {
    int64_t size = 0;
    int pins = 0;
    std::list<std::string>::iterator lru;  // position in lru_ (front = most recent)
  };
  std::string PathFor(const std::string& hex) const;
  void Touch(const std::string& hex, Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EvictLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Release(const std::string& hex);
  // Streams `id` into a new temp file and verifies it; returns the file's size.
  absl::StatusOr<int64_t> FetchInto(const std::string& id, const std::string& hex,
                                    const Fetcher& fetch, const std::string& tmp) const;

  const std::string dir_;
  const int64_t max_bytes_;
  const Verifier verifier_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);
  int64_t total_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t hits_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t misses_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t temp_counter_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_DATASET_CACHE_H_
