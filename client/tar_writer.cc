#include "client/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace nanonas {
namespace fs = std::filesystem;

namespace {

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;
using EntryPtr = std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)>;
using FilePtr = std::unique_ptr<FILE, int (*)(FILE*)>;

bool Hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

absl::Status ArchiveError(struct archive* a) {
  const char* e = archive_error_string(a);
  return absl::InternalError(absl::StrCat("libarchive: ", e != nullptr ? e : "error"));
}

// A tar writer over `callback(client, ...)`; the same settings for counting and streaming, so the
// counted size is the streamed one.
absl::StatusOr<ArchivePtr> OpenArchive(void* client, archive_write_callback* callback) {
  ArchivePtr a(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open(a.get(), client, nullptr, callback, nullptr) != ARCHIVE_OK) {
    return ArchiveError(a.get());
  }
  return a;
}

absl::Status WriteHeader(struct archive* a, const DatasetFile& f) {
  EntryPtr entry(archive_entry_new(), archive_entry_free);
  archive_entry_set_pathname(entry.get(), f.name.c_str());
  archive_entry_set_size(entry.get(), static_cast<la_int64_t>(f.size));
  archive_entry_set_filetype(entry.get(), AE_IFREG);
  archive_entry_set_perm(entry.get(), 0644);
  if (archive_write_header(a, entry.get()) != ARCHIVE_OK) return ArchiveError(a);
  return absl::OkStatus();
}

la_ssize_t Count(struct archive*, void* client, const void*, size_t length) {
  *static_cast<int64_t*>(client) += static_cast<int64_t>(length);
  return static_cast<la_ssize_t>(length);
}

// Cuts what libarchive writes into chunks of exactly `chunk_bytes` for the sink.
class Chunker {
 public:
  Chunker(size_t chunk_bytes, const TarSink& sink, TarStreamStats* stats)
      : chunk_bytes_(chunk_bytes), sink_(sink), stats_(stats) {
    buffer_.reserve(chunk_bytes);
  }

  bool Add(const char* data, size_t n) {
    if (abandoned_) return true;
    while (n > 0) {
      const size_t take = std::min(n, chunk_bytes_ - buffer_.size());
      buffer_.append(data, take);
      stats_->max_buffered = std::max(stats_->max_buffered, buffer_.size());
      data += take;
      n -= take;
      if (buffer_.size() == chunk_bytes_ && !Emit()) return false;
    }
    return true;
  }
  bool Flush() { return buffer_.empty() || Emit(); }
  bool failed() const { return failed_; }
  // After an error: whatever libarchive still writes (the trailer, when it is freed) is dropped.
  void Abandon() { abandoned_ = true; }

  static la_ssize_t Callback(struct archive*, void* client, const void* data, size_t length) {
    auto* self = static_cast<Chunker*>(client);
    if (!self->Add(static_cast<const char*>(data), length)) return -1;
    return static_cast<la_ssize_t>(length);
  }

 private:
  bool Emit() {
    stats_->max_chunk = std::max(stats_->max_chunk, buffer_.size());
    stats_->bytes += static_cast<int64_t>(buffer_.size());
    ++stats_->chunks;
    failed_ = !sink_(buffer_);
    buffer_.clear();
    return !failed_;
  }

  const size_t chunk_bytes_;
  const TarSink& sink_;
  TarStreamStats* stats_;
  std::string buffer_;
  bool failed_ = false;
  bool abandoned_ = false;
};

// Copies `f`'s listed size from disk into the archive, `buffer` at a time.
absl::Status WriteData(struct archive* a, const DatasetFile& f, std::vector<char>* buffer) {
  FilePtr in(std::fopen(f.path.c_str(), "rb"), std::fclose);
  if (in == nullptr) return absl::InvalidArgumentError(absl::StrCat("cannot read ", f.path));
  int64_t left = f.size;
  while (left > 0) {
    const size_t want = static_cast<size_t>(std::min<int64_t>(left, buffer->size()));
    const size_t got = std::fread(buffer->data(), 1, want, in.get());
    if (got == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          f.path, " is shorter than when the folder was listed (it changed); run again"));
    }
    if (archive_write_data(a, buffer->data(), got) < 0) return ArchiveError(a);
    left -= static_cast<int64_t>(got);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DatasetListing> ListDatasetFolder(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset folder '", dir, "' does not exist"));
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", dir, "' is not a folder; give a folder with one sub-folder of images per class"));
  }
  std::vector<fs::path> classes;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory() && !Hidden(e.path())) classes.push_back(e.path());
  }
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", dir, "' has no class sub-folders; lay it out as ", dir, "/<class>/<image>"));
  }
  DatasetListing out;
  out.classes = static_cast<int>(classes.size());
  for (const fs::path& cls : classes) {
    std::vector<DatasetFile> files;
    for (const auto& e : fs::directory_iterator(cls, ec)) {
      if (!e.is_regular_file() || Hidden(e.path())) continue;
      DatasetFile f;
      f.path = e.path().string();
      f.name = cls.filename().string() + "/" + e.path().filename().string();
      f.size = static_cast<int64_t>(e.file_size(ec));
      if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot read ", f.path));
      files.push_back(std::move(f));
    }
    std::sort(files.begin(), files.end(),
              [](const DatasetFile& a, const DatasetFile& b) { return a.name < b.name; });
    for (DatasetFile& f : files) {
      out.file_bytes += f.size;
      out.files.push_back(std::move(f));
    }
  }
  if (out.files.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", dir, "' holds no files in its class folders"));
  }
  return out;
}

absl::StatusOr<int64_t> TarArchiveSize(const DatasetListing& listing) {
  int64_t total = 0;
  auto a = OpenArchive(&total, Count);
  if (!a.ok()) return a.status();
  for (const DatasetFile& f : listing.files) {
    absl::Status s = WriteHeader(a->get(), f);
    if (!s.ok()) return s;
    // No data: finishing the entry writes the listed size as zeros.
    if (archive_write_finish_entry(a->get()) != ARCHIVE_OK) return ArchiveError(a->get());
  }
  if (archive_write_close(a->get()) != ARCHIVE_OK) return ArchiveError(a->get());
  return total;
}

absl::StatusOr<TarStreamStats> StreamTar(const DatasetListing& listing, size_t chunk_bytes,
                                         const TarSink& sink) {
  TarStreamStats stats;
  Chunker chunker(chunk_bytes, sink, &stats);
  auto a = OpenArchive(&chunker, Chunker::Callback);
  if (!a.ok()) return a.status();
  auto failure = [&](absl::Status s) {
    chunker.Abandon();
    if (chunker.failed()) return absl::AbortedError("the upload stream broke");
    return s;
  };
  std::vector<char> buffer(std::min<size_t>(chunk_bytes, 1 << 20));
  for (const DatasetFile& f : listing.files) {
    absl::Status s = WriteHeader(a->get(), f);
    if (s.ok()) s = WriteData(a->get(), f, &buffer);
    if (!s.ok()) return failure(s);
  }
  if (archive_write_close(a->get()) != ARCHIVE_OK) return failure(ArchiveError(a->get()));
  if (!chunker.Flush()) return absl::AbortedError("the upload stream broke");
  return stats;
}

}  // namespace nanonas
