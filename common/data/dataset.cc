// Split, content hash, serialisation and subsets of a decoded dataset.
//
// Serialised form (all integers little-endian):
//   body    = "NNDS" | u32 version (1) | u32 height | u32 width | u32 channels | u64 N
//             | u32 classes | classes x (u32 length | name bytes) | N x i32 label | N*H*W*C pixels
//   blob    = body | u32 CRC-32 (zlib) of body
//   ContentHash = hex SHA-256 of body
#include "common/data/dataset.h"

#include <zlib.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/log.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"

namespace nanonas {
namespace {

constexpr char kMagic[4] = {'N', 'N', 'D', 'S'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kMaxSide = 1 << 16;
constexpr uint32_t kMaxClasses = 1 << 20;
constexpr uint32_t kMaxNameBytes = 4096;

// Writes the body to a sink: Sink(const void* data, size_t n).
template <typename Sink>
void WriteBody(const Dataset& d, Sink&& sink) {
  auto u32 = [&](uint32_t v) {
    uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
    sink(b, 4);
  };
  auto u64 = [&](uint64_t v) {
    u32(static_cast<uint32_t>(v));
    u32(static_cast<uint32_t>(v >> 32));
  };
  sink(kMagic, 4);
  u32(kVersion);
  u32(static_cast<uint32_t>(d.shape.height));
  u32(static_cast<uint32_t>(d.shape.width));
  u32(static_cast<uint32_t>(d.shape.channels));
  u64(static_cast<uint64_t>(d.size()));
  u32(static_cast<uint32_t>(d.class_names.size()));
  for (const std::string& name : d.class_names) {
    u32(static_cast<uint32_t>(name.size()));
    sink(name.data(), name.size());
  }
  // Labels in chunks so that the sink sees few, large writes.
  uint8_t buf[4096];
  size_t fill = 0;
  for (int32_t label : d.labels) {
    const auto v = static_cast<uint32_t>(label);
    buf[fill++] = uint8_t(v);
    buf[fill++] = uint8_t(v >> 8);
    buf[fill++] = uint8_t(v >> 16);
    buf[fill++] = uint8_t(v >> 24);
    if (fill == sizeof(buf)) {
      sink(buf, fill);
      fill = 0;
    }
  }
  if (fill > 0) sink(buf, fill);
  sink(d.pixels(), static_cast<size_t>(d.pixel_bytes()));
}

class Reader {
 public:
  Reader(const char* bytes, size_t end) : p_(bytes), end_(bytes + end) {}
  Reader(const std::string& bytes, size_t end) : Reader(bytes.data(), end) {}
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool Bytes(void* out, size_t n) {
    if (remaining() < n) return false;
    std::memcpy(out, p_, n);
    p_ += n;
    return true;
  }
  bool U32(uint32_t* v) {
    uint8_t b[4];
    if (!Bytes(b, 4)) return false;
    *v = uint32_t{b[0]} | (uint32_t{b[1]} << 8) | (uint32_t{b[2]} << 16) | (uint32_t{b[3]} << 24);
    return true;
  }
  bool U64(uint64_t* v) {
    uint32_t lo, hi;
    if (!U32(&lo) || !U32(&hi)) return false;
    *v = uint64_t{lo} | (uint64_t{hi} << 32);
    return true;
  }
  const char* position() const { return p_; }
  void Skip(size_t n) { p_ += n; }

 private:
  const char* p_;
  const char* end_;
};

absl::Status Corrupt(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("serialised dataset is invalid: ", why));
}

// The fixed part after the magic: version, H, W, C, N and the class count, checked.
absl::Status ReadFixedHeader(Reader& r, uint32_t* h, uint32_t* w, uint32_t* c, uint64_t* n,
                             uint32_t* classes) {
  r.Skip(4);
  uint32_t version;
  if (!r.U32(&version) || !r.U32(h) || !r.U32(w) || !r.U32(c) || !r.U64(n) || !r.U32(classes)) {
    return Corrupt("header is cut short");
  }
  if (version != kVersion) return Corrupt(absl::StrCat("unsupported version ", version));
  if (*h == 0 || *w == 0 || *h > kMaxSide || *w > kMaxSide || (*c != 1 && *c != 3)) {
    return Corrupt(absl::StrCat("bad image size ", *h, "x", *w, "x", *c));
  }
  if (*classes == 0 || *classes > kMaxClasses) {
    return Corrupt(absl::StrCat("bad class count ", *classes));
  }
  return absl::OkStatus();
}

uint32_t Crc32(const char* data, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const uInt chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

// Uniform integer in [0, n) from a 64-bit generator, by rejection (no modulo bias). Written out
// because std::uniform_int_distribution differs between standard libraries.
uint64_t Below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

}  // namespace

absl::StatusOr<Split> SplitTrainValidation(const Dataset& data, double validation_fraction,
                                           uint64_t seed) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("validation fraction ", validation_fraction, " is outside [0, 1)"));
  }
  const int64_t n = data.size();
  int64_t n_val = static_cast<int64_t>(std::floor(static_cast<double>(n) * validation_fraction));
  if (validation_fraction > 0 && n_val < 1) n_val = 1;
  if (n - n_val < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot split ", n, " images with validation fraction ", validation_fraction,
                     ": the training side would be empty"));
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {  // Fisher-Yates
    const auto j = static_cast<int64_t>(Below(rng, static_cast<uint64_t>(i + 1)));
    std::swap(order[i], order[j]);
  }
  Split split;
  split.train.assign(order.begin(), order.end() - n_val);
  split.validation.assign(order.end() - n_val, order.end());
  return split;
}

std::string ContentHash(const Dataset& data) {
  Sha256 hash;
  WriteBody(data, [&](const void* p, size_t n) { hash.Update(p, n); });
  return hash.HexDigest();
}

std::string SerializeDataset(const Dataset& data) {
  std::string out;
  out.reserve(64 + static_cast<size_t>(data.pixel_bytes()) + 4 * data.labels.size());
  WriteBody(data, [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); });
  const uint32_t crc = Crc32(out.data(), out.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(crc >> (8 * i)));
  return out;
}

absl::StatusOr<Dataset> ParseDatasetView(const char* bytes, size_t size, bool verify_checksum) {
  if (size < 4 + 4 + 12 + 8 + 4 + 4) return Corrupt("too short for a header");
  if (std::memcmp(bytes, kMagic, 4) != 0) return Corrupt("bad magic (not a dataset)");
  const size_t body = size - 4;
  Reader r(bytes, body);
  uint32_t h, w, c, classes;
  uint64_t n;
  NANONAS_RETURN_IF_ERROR(ReadFixedHeader(r, &h, &w, &c, &n, &classes));
  Dataset d;
  d.shape = {static_cast<int>(h), static_cast<int>(w), static_cast<int>(c)};
  d.class_names.reserve(classes);
  for (uint32_t i = 0; i < classes; ++i) {
    uint32_t len;
    if (!r.U32(&len)) return Corrupt("class names are cut short");
    if (len > kMaxNameBytes || len > r.remaining()) {
      return Corrupt(absl::StrCat("class name ", i, " has a bad length ", len));
    }
    d.class_names.emplace_back(r.position(), len);
    r.Skip(len);
  }
  const uint64_t image_bytes = uint64_t{h} * w * c;  // <= 2^34
  // Each image needs 4 label bytes + image_bytes pixel bytes: bound n before multiplying.
  if (n > r.remaining() / (4 + image_bytes)) {
    return Corrupt(absl::StrCat("declares ", n, " images but holds only ", r.remaining(),
                                " bytes after its header"));
  }
  if (r.remaining() != n * (4 + image_bytes)) {
    return Corrupt(absl::StrCat("length ", size, " does not match its header (", n, " images of ",
                                h, "x", w, "x", c, ")"));
  }
  const auto* crc_at = reinterpret_cast<const uint8_t*>(bytes + body);
  const uint32_t stored_crc = uint32_t{crc_at[0]} | (uint32_t{crc_at[1]} << 8) |
                              (uint32_t{crc_at[2]} << 16) | (uint32_t{crc_at[3]} << 24);
  if (verify_checksum && Crc32(bytes, body) != stored_crc) {
    return Corrupt("checksum mismatch (data corrupted)");
  }
  d.labels.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t v;
    r.U32(&v);
    const auto label = static_cast<int32_t>(v);
    if (label < 0 || static_cast<uint32_t>(label) >= classes) {
      return Corrupt(
          absl::StrCat("label ", label, " of image ", i, " is outside the ", classes, " classes"));
    }
    d.labels[i] = label;
  }
  d.view = reinterpret_cast<const uint8_t*>(r.position());
  d.view_bytes = static_cast<int64_t>(n * image_bytes);
  return d;
}

absl::StatusOr<Dataset> DeserializeDataset(const std::string& bytes) {
  absl::StatusOr<Dataset> d = ParseDatasetView(bytes.data(), bytes.size(), true);
  if (!d.ok()) return d.status();
  d->images.assign(d->view, d->view + d->view_bytes);
  d->view = nullptr;
  d->view_bytes = 0;
  return d;
}

Dataset Subset(const Dataset& data, const std::vector<int64_t>& indices) {
  Dataset out;
  out.shape = data.shape;
  out.class_names = data.class_names;
  const int64_t bytes = data.image_bytes();
  out.labels.reserve(indices.size());
  out.images.reserve(indices.size() * static_cast<size_t>(bytes));
  int64_t skipped = 0;
  for (int64_t i : indices) {
    if (i < 0 || i >= data.size()) {
      ++skipped;
      continue;
    }
    out.labels.push_back(data.labels[i]);
    out.images.insert(out.images.end(), data.image(i), data.image(i) + bytes);
  }
  if (skipped > 0) {
    NANONAS_LOG(ERROR) << "Subset: skipped " << skipped << " indices outside [0, " << data.size()
                       << ")";
  }
  return out;
}

}  // namespace nanonas

// --- Streaming serialisation (common/data/pack.h) ---

namespace nanonas {

std::string SerializeDatasetHead(const InputShape& shape,
                                 const std::vector<std::string>& class_names,
                                 const std::vector<int32_t>& labels) {
  Dataset d;  // no pixels: WriteBody then stops right after the labels
  d.shape = shape;
  d.class_names = class_names;
  d.labels = labels;
  std::string out;
  WriteBody(d, [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); });
  return out;
}

absl::StatusOr<DatasetHead> ReadDatasetHead(std::istream& in, uint64_t file_size) {
  constexpr size_t kFixed = 4 + 4 + 12 + 8 + 4;  // magic, version, H W C, N, classes
  if (file_size < kFixed + 4) return Corrupt("too short for a header");
  std::string buf(kFixed, '\0');
  auto read = [&](size_t n) {
    buf.resize(n);
    return static_cast<bool>(in.read(buf.data(), static_cast<std::streamsize>(n)));
  };
  if (!read(kFixed)) return Corrupt("header is cut short");
  if (std::memcmp(buf.data(), kMagic, 4) != 0) return Corrupt("bad magic (not a dataset)");
  Reader r(buf, kFixed);
  uint32_t h, w, c, classes;
  uint64_t n;
  NANONAS_RETURN_IF_ERROR(ReadFixedHeader(r, &h, &w, &c, &n, &classes));
  DatasetHead head;
  head.shape = {static_cast<int>(h), static_cast<int>(w), static_cast<int>(c)};
  uint64_t remaining = file_size - 4 - kFixed;  // body bytes after the fixed header
  for (uint32_t i = 0; i < classes; ++i) {
    uint32_t len;
    if (remaining < 4 || !read(4)) return Corrupt("class names are cut short");
    Reader(buf, 4).U32(&len);
    remaining -= 4;
    if (len > kMaxNameBytes || len > remaining) {
      return Corrupt(absl::StrCat("class name ", i, " has a bad length ", len));
    }
    if (!read(len)) return Corrupt("class names are cut short");
    head.class_names.push_back(buf);
    remaining -= len;
  }
  const uint64_t image_bytes = uint64_t{h} * w * c;
  if (n > remaining / (4 + image_bytes)) {
    return Corrupt(absl::StrCat("declares ", n, " images but holds only ", remaining,
                                " bytes after its header"));
  }
  if (remaining != n * (4 + image_bytes)) {
    return Corrupt(absl::StrCat("length ", file_size, " does not match its header (", n,
                                " images of ", h, "x", w, "x", c, ")"));
  }
  head.labels.resize(n);
  constexpr uint64_t kLabelsPerRead = 16384;
  for (uint64_t i = 0; i < n; i += kLabelsPerRead) {
    const uint64_t count = std::min(kLabelsPerRead, n - i);
    if (!read(count * 4)) return Corrupt("labels are cut short");
    Reader labels(buf, buf.size());
    for (uint64_t j = 0; j < count; ++j) {
      uint32_t v;
      labels.U32(&v);
      const auto label = static_cast<int32_t>(v);
      if (label < 0 || static_cast<uint32_t>(label) >= classes) {
        return Corrupt(absl::StrCat("label ", label, " of image ", i + j, " is outside the ",
                                    classes, " classes"));
      }
      head.labels[i + j] = label;
    }
  }
  head.pixel_offset = static_cast<int64_t>(file_size - 4 - n * image_bytes);
  return head;
}

}  // namespace nanonas
