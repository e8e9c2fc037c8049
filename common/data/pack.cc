// PackImageFolder, PackDatasetFile, InspectDatasetFile: serialised datasets written and read in
// chunks. The listing, decoding and conversion are folder.cc's (folder_internal.h); the head of
// the format is dataset.cc's (SerializeDatasetHead, ReadDatasetHead).
#include "common/data/pack.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/data/folder_internal.h"

namespace nanonas {
namespace {

namespace fs = std::filesystem;

// Running CRC-32 (zlib) and SHA-256 of a serialised body.
class BodyDigest {
 public:
  void Update(const void* data, size_t n) {
    const auto* p = static_cast<const Bytef*>(data);
    sha_.Update(data, n);
    while (n > 0) {
      const auto part = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
      crc_ = crc32(crc_, p, part);
      p += part;
      n -= part;
    }
  }
  uint32_t crc() const { return static_cast<uint32_t>(crc_); }
  std::string HexDigest() { return sha_.HexDigest(); }

 private:
  Sha256 sha_;
  uLong crc_ = crc32(0L, Z_NULL, 0);
};

// Writes a serialised dataset under a temporary name beside `path` (same folder, so the final
// rename is atomic); the temporary file is removed unless Commit succeeds.
class BodyWriter {
 public:
  explicit BodyWriter(std::string path) : path_(std::move(path)) {
    static std::atomic<uint64_t> counter{0};
    temp_ = absl::StrCat(path_, ".tmp-", ::getpid(), "-", counter.fetch_add(1));
  }
  ~BodyWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
  }

  absl::Status Open() {
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return IoError("cannot create");
    return absl::OkStatus();
  }
  absl::Status Append(const void* data, size_t n) {
    digest_.Update(data, n);
    return Write(data, n);
  }
  // Appends the CRC-32 trailer, syncs and renames the file to its final path.
  absl::StatusOr<PackedDataset> Commit(PackedDataset packed) {
    const uint32_t crc = digest_.crc();
    const uint8_t trailer[4] = {uint8_t(crc), uint8_t(crc >> 8), uint8_t(crc >> 16),
                                uint8_t(crc >> 24)};
    NANONAS_RETURN_IF_ERROR(Write(trailer, 4));
    if (::fsync(fd_) != 0) return IoError("cannot sync");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return IoError("cannot close");
    if (::rename(temp_.c_str(), path_.c_str()) != 0) return IoError("cannot rename");
    committed_ = true;
    packed.content_hex = digest_.HexDigest();
    packed.file_bytes = written_;
    return packed;
  }

 private:
  absl::Status Write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return IoError("cannot write");
      p += w;
      n -= static_cast<size_t>(w);
      written_ += w;
    }
    return absl::OkStatus();
  }
  absl::Status IoError(const char* what) const {
    return absl::InternalError(absl::StrCat(what, " ", temp_, ": ", std::strerror(errno)));
  }

  std::string path_;
  std::string temp_;
  int fd_ = -1;
  bool committed_ = false;
  int64_t written_ = 0;
  BodyDigest digest_;
};

// Images per chunk: at most max_images, and as many as fit in max_bytes at `bytes_per_image`.
int64_t ChunkImages(const PackChunking& chunking, int64_t bytes_per_image) {
  const int64_t by_bytes = chunking.max_bytes / std::max<int64_t>(bytes_per_image, 1);
  return std::max<int64_t>(1, std::min(chunking.max_images, by_bytes));
}

absl::Status CheckCancelled(const std::function<bool()>& cancelled) {
  if (cancelled && cancelled()) return absl::CancelledError("packing the dataset was cancelled");
  return absl::OkStatus();
}

int64_t ImageBytes(const InputShape& s) {
  return static_cast<int64_t>(s.height) * s.width * s.channels;
}

// Reads a serialised dataset file in chunks: its head first, then pixels, then the trailer,
// checking the CRC-32 over everything read.
class BodyReader {
 public:
  absl::Status Open(const std::string& path) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    in_.open(path, std::ios::binary);
    if (ec || !in_) {
      return absl::NotFoundError(absl::StrCat("cannot open dataset file ", path, ": ",
                                              ec ? ec.message() : std::strerror(errno)));
    }
    NANONAS_ASSIGN_OR_RETURN(head_, ReadDatasetHead(in_, size));
    // The head is canonical: serialising what was read gives the bytes that were read.
    const std::string head_bytes =
        SerializeDatasetHead(head_.shape, head_.class_names, head_.labels);
    digest_.Update(head_bytes.data(), head_bytes.size());
    return absl::OkStatus();
  }
  const DatasetHead& head() const { return head_; }
  int64_t size() const { return static_cast<int64_t>(head_.labels.size()); }

  absl::Status ReadImages(int64_t count, uint8_t* out) {
    const auto n = static_cast<std::streamsize>(count * ImageBytes(head_.shape));
    if (!in_.read(reinterpret_cast<char*>(out), n)) return Invalid("pixels are cut short");
    digest_.Update(out, static_cast<size_t>(n));
    return absl::OkStatus();
  }
  // Reads and checks the trailer; returns the content hash (hex SHA-256 of the body).
  absl::StatusOr<std::string> Finish() {
    uint8_t b[4];
    if (!in_.read(reinterpret_cast<char*>(b), 4)) return Invalid("checksum is cut short");
    const uint32_t stored =
        uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
    if (stored != digest_.crc()) return Invalid("checksum mismatch (data corrupted)");
    return digest_.HexDigest();
  }

 private:
  static absl::Status Invalid(const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("serialised dataset is invalid: ", why));
  }
  std::ifstream in_;
  DatasetHead head_;
  BodyDigest digest_;
};

}  // namespace

absl::StatusOr<PackedDataset> PackImageFolder(const std::string& root, const FolderOptions& options,
                                              const std::string& out_path,
                                              const PackProgressFn& progress,
                                              const std::function<bool()>& cancelled,
                                              const PackChunking& chunking) {
  NANONAS_ASSIGN_OR_RETURN(data_internal::FolderListing listing,
                           data_internal::ListImageFolder(root, options));
  const int64_t total = listing.size();
  const int64_t image_bytes = ImageBytes(options.size);
  PackedDataset packed;
  packed.shape = options.size;
  packed.num_images = total;
  packed.pixel_bytes = total * image_bytes;
  packed.class_names = listing.class_names;

  BodyWriter writer(out_path);
  NANONAS_RETURN_IF_ERROR(writer.Open());
  {
    const std::string head =
        SerializeDatasetHead(options.size, listing.class_names, listing.labels);
    NANONAS_RETURN_IF_ERROR(writer.Append(head.data(), head.size()));
  }
  const int64_t chunk = std::min(total, ChunkImages(chunking, image_bytes));
  std::vector<uint8_t> pixels(static_cast<size_t>(chunk * image_bytes));  // (chunk, H, W, C)
  packed.peak_buffer_bytes = static_cast<int64_t>(pixels.size());
  for (int64_t begin = 0; begin < total; begin += chunk) {
    NANONAS_RETURN_IF_ERROR(CheckCancelled(cancelled));
    const int64_t end = std::min(total, begin + chunk);
    NANONAS_RETURN_IF_ERROR(
        data_internal::DecodeImages(listing, begin, end, options, pixels.data()));
    NANONAS_RETURN_IF_ERROR(
        writer.Append(pixels.data(), static_cast<size_t>((end - begin) * image_bytes)));
    if (progress) progress(PackProgress{end, total});
  }
  return writer.Commit(std::move(packed));
}

absl::StatusOr<PackedDataset> PackDatasetFile(const std::string& nnds_path, const InputShape& size,
                                              const std::string& out_path,
                                              const PackProgressFn& progress,
                                              const std::function<bool()>& cancelled,
                                              const PackChunking& chunking) {
  BodyReader reader;
  NANONAS_RETURN_IF_ERROR(reader.Open(nnds_path));
  NANONAS_RETURN_IF_ERROR(data_internal::CheckShape(size, "target size"));
  const DatasetHead& head = reader.head();
  const int64_t total = reader.size();
  const int64_t in_bytes = ImageBytes(head.shape);
  const int64_t out_bytes = ImageBytes(size);
  const bool same_shape = head.shape == size;  // then conversion is a copy: write the input
  PackedDataset packed;
  packed.shape = size;
  packed.num_images = total;
  packed.pixel_bytes = total * out_bytes;
  packed.class_names = head.class_names;

  BodyWriter writer(out_path);
  NANONAS_RETURN_IF_ERROR(writer.Open());
  {
    const std::string out_head = SerializeDatasetHead(size, head.class_names, head.labels);
    NANONAS_RETURN_IF_ERROR(writer.Append(out_head.data(), out_head.size()));
  }
  const int64_t chunk = std::max<int64_t>(
      1, std::min(total, ChunkImages(chunking, in_bytes + (same_shape ? 0 : out_bytes))));
  std::vector<uint8_t> in(static_cast<size_t>(chunk * in_bytes));  // (chunk, H, W, C) as stored
  std::vector<uint8_t> out(same_shape ? 0 : static_cast<size_t>(chunk * out_bytes));
  packed.peak_buffer_bytes = static_cast<int64_t>(in.size() + out.size());
  for (int64_t begin = 0; begin < total; begin += chunk) {
    NANONAS_RETURN_IF_ERROR(CheckCancelled(cancelled));
    const int64_t count = std::min(total, begin + chunk) - begin;
    NANONAS_RETURN_IF_ERROR(reader.ReadImages(count, in.data()));
    const uint8_t* converted = in.data();
    if (!same_shape) {
      NANONAS_RETURN_IF_ERROR(
          data_internal::ConvertImages(in.data(), head.shape, count, size, out.data()));
      converted = out.data();
    }
    NANONAS_RETURN_IF_ERROR(writer.Append(converted, static_cast<size_t>(count * out_bytes)));
    if (progress) progress(PackProgress{begin + count, total});
  }
  NANONAS_RETURN_IF_ERROR(reader.Finish().status());
  return writer.Commit(std::move(packed));
}

absl::StatusOr<PackedDataset> InspectDatasetFile(const std::string& nnds_path,
                                                 const PackChunking& chunking) {
  BodyReader reader;
  NANONAS_RETURN_IF_ERROR(reader.Open(nnds_path));
  const int64_t total = reader.size();
  const int64_t image_bytes = ImageBytes(reader.head().shape);
  PackedDataset info;
  info.shape = reader.head().shape;
  info.num_images = total;
  info.pixel_bytes = total * image_bytes;
  info.class_names = reader.head().class_names;
  info.file_bytes = reader.head().pixel_offset + info.pixel_bytes + 4;
  const int64_t chunk = std::max<int64_t>(1, std::min(total, ChunkImages(chunking, image_bytes)));
  std::vector<uint8_t> pixels(static_cast<size_t>(chunk * image_bytes));
  info.peak_buffer_bytes = static_cast<int64_t>(pixels.size());
  for (int64_t begin = 0; begin < total; begin += chunk) {
    const int64_t count = std::min(total, begin + chunk) - begin;
    NANONAS_RETURN_IF_ERROR(reader.ReadImages(count, pixels.data()));
  }
  NANONAS_ASSIGN_OR_RETURN(info.content_hex, reader.Finish());
  return info;
}

}  // namespace nanonas
