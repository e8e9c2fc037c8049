#include "worker/service/dataset_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"

namespace nanonas {
namespace fs = std::filesystem;

DatasetCache::Lease::~Lease() { cache_->Release(hex_); }

DatasetCache::DatasetCache(std::string dir, int64_t max_bytes, Verifier verifier)
    : dir_(std::move(dir)), max_bytes_(max_bytes), verifier_(std::move(verifier)) {}

std::string DatasetCache::PathFor(const std::string& hex) const {
  return (fs::path(dir_) / absl::StrCat("sha256-", hex, ".nnds")).string();
}

absl::Status DatasetCache::Init() {
  if (max_bytes_ <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset cache size must be positive, got ", max_bytes_));
  }
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the dataset cache folder ", dir_, ": ", ec.message()));
  }
  if (access(dir_.c_str(), W_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the dataset cache folder ", dir_, " is not writable"));
  }
  struct Found {
    std::string hex;
    int64_t size;
    fs::file_time_type mtime;
  };
  std::vector<Found> found;
  for (const auto& de : fs::directory_iterator(dir_, ec)) {
    std::string name = de.path().filename().string();
    if (absl::StartsWith(name, "tmp-")) {  // a previous process died mid-write
      fs::remove(de.path(), ec);
      continue;
    }
    if (!absl::StartsWith(name, "sha256-") || !absl::EndsWith(name, ".nnds")) continue;
    std::string hex = name.substr(7, name.size() - 7 - 5);
    if (!DatasetIdHex(hex).ok()) continue;
    found.push_back({hex, static_cast<int64_t>(de.file_size(ec)), de.last_write_time(ec)});
  }
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.mtime > b.mtime; });
  std::lock_guard<std::mutex> lock(mu_);
  for (const Found& f : found) {
    lru_.push_back(f.hex);
    Entry e;
    e.size = f.size;
    e.lru = std::prev(lru_.end());
    entries_[f.hex] = e;
    total_ += f.size;
  }
  EvictLocked();
  return absl::OkStatus();
}

absl::Status DatasetCache::Verify(const std::string& hex, const Fetched& fetched) const {
  if (fetched.sha256 == hex) return absl::OkStatus();
  if (verifier_ && verifier_(hex, fetched)) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("dataset sha256:", hex, " fetched (", fetched.size,
                                          " bytes) does not match its content hash"));
}

absl::StatusOr<int64_t> DatasetCache::FetchInto(const std::string& id, const std::string& hex,
                                                const Fetcher& fetch,
                                                const std::string& tmp) const {
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  Sha256 all, body;
  // The last 4 bytes seen are held back from `body` until more arrive: at the end they are the
  // trailer that ContentHash leaves out.
  std::string held;
  int64_t size = 0;
  auto sink = [&](absl::string_view chunk) -> absl::Status {
    out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    if (!out) return absl::InternalError(absl::StrCat("could not write ", tmp, " (disk full?)"));
    all.Update(chunk);
    size += static_cast<int64_t>(chunk.size());
    if (chunk.size() >= 4) {
      body.Update(held);
      body.Update(chunk.substr(0, chunk.size() - 4));
      held.assign(chunk.data() + chunk.size() - 4, 4);
    } else {
      held.append(chunk.data(), chunk.size());
      if (held.size() > 4) {
        body.Update(absl::string_view(held).substr(0, held.size() - 4));
        held.erase(0, held.size() - 4);
      }
    }
    return absl::OkStatus();
  };
  absl::Status fetched = fetch(id, sink);
  out.close();
  if (!fetched.ok()) return fetched;
  if (!out) return absl::InternalError(absl::StrCat("could not write ", tmp, " (disk full?)"));
  Fetched f{tmp, size, all.HexDigest(), held.size() == 4 ? body.HexDigest() : ""};
  NANONAS_RETURN_IF_ERROR(Verify(hex, f));
  return size;
}

void DatasetCache::Touch(const std::string& hex, Entry& e) {
  lru_.erase(e.lru);
  lru_.push_front(hex);
  e.lru = lru_.begin();
}

void DatasetCache::EvictLocked() {
  auto it = lru_.end();
  while (total_ > max_bytes_ && it != lru_.begin()) {
    --it;
    auto en = entries_.find(*it);
    if (en->second.pins > 0) continue;
    std::error_code ec;
    fs::remove(PathFor(*it), ec);
    NANONAS_LOG(INFO) << "dataset cache: evicted sha256:" << *it << " (" << en->second.size
                      << " bytes)";
    total_ -= en->second.size;
    entries_.erase(en);
    it = lru_.erase(it);
  }
}

void DatasetCache::Release(const std::string& hex) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(hex);
  if (it != entries_.end() && it->second.pins > 0) --it->second.pins;
  EvictLocked();
}

absl::StatusOr<std::unique_ptr<DatasetCache::Lease>> DatasetCache::Get(const std::string& id,
                                                                       const Fetcher& fetch) {
  auto hex_or = DatasetIdHex(id);
  if (!hex_or.ok()) return hex_or.status();
  const std::string hex = *hex_or;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(hex);
    if (it != entries_.end()) {
      ++hits_;
      ++it->second.pins;
      Touch(hex, it->second);
      return std::unique_ptr<Lease>(new Lease(this, hex, PathFor(hex), it->second.size));
    }
    ++misses_;
  }
  // Fetch outside the lock; two concurrent misses for one id both fetch, the second rename wins.
  std::string tmp;
  {
    std::lock_guard<std::mutex> lock(mu_);
    tmp = (fs::path(dir_) / absl::StrCat("tmp-", getpid(), "-", temp_counter_++)).string();
  }
  absl::StatusOr<int64_t> fetched = FetchInto(id, hex, fetch, tmp);
  if (!fetched.ok()) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return fetched.status();
  }
  const int64_t size = *fetched;
  std::lock_guard<std::mutex> lock(mu_);
  if (std::rename(tmp.c_str(), PathFor(hex).c_str()) != 0) {
    std::error_code ec;
    fs::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("could not move the dataset into ", PathFor(hex)));
  }
  auto it = entries_.find(hex);
  if (it == entries_.end()) {
    lru_.push_front(hex);
    Entry e;
    e.size = size;
    e.lru = lru_.begin();
    it = entries_.emplace(hex, e).first;
    total_ += size;
  } else {
    Touch(hex, it->second);
  }
  ++it->second.pins;
  EvictLocked();
  return std::unique_ptr<Lease>(new Lease(this, hex, PathFor(hex), size));
}

bool DatasetCache::Contains(const std::string& id) const {
  auto hex = DatasetIdHex(id);
  if (!hex.ok()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.count(*hex) > 0;
}

int64_t DatasetCache::size_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}
int64_t DatasetCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}
int64_t DatasetCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}

}  // namespace nanonas
