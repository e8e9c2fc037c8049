#include "worker/service/weights_codec.h"

#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nanonas {
namespace {

constexpr char kMagic[4] = {'N', 'N', 'W', 'T'};
constexpr uint32_t kVersion = 1;
constexpr int32_t kMaxDim = 1 << 20;

class Writer {
 public:
  void U32(uint32_t v) { Raw(&v, 4); }
  void I32(int32_t v) { Raw(&v, 4); }
  void F32(float v) { Raw(&v, 4); }
  void Floats(const std::vector<float>& v) { Raw(v.data(), v.size() * sizeof(float)); }
  std::string out;

 private:
  void Raw(const void* p, size_t n) {  // x86-64 and aarch64 are little-endian
    out.append(static_cast<const char*>(p), n);
  }
};

class Reader {
 public:
  explicit Reader(const std::string& b) : b_(b) {}
  bool U32(uint32_t* v) { return Raw(v, 4); }
  bool I32(int32_t* v) { return Raw(v, 4); }
  bool F32(float* v) { return Raw(v, 4); }
  bool Floats(int64_t n, std::vector<float>* v) {
    if (n < 0 || static_cast<uint64_t>(n) * 4 > b_.size() - pos_) return false;
    v->resize(static_cast<size_t>(n));
    return Raw(v->data(), static_cast<size_t>(n) * 4);
  }
  bool done() const { return pos_ == b_.size(); }

 private:
  bool Raw(void* p, size_t n) {
    if (b_.size() - pos_ < n) return false;
    std::memcpy(p, b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  const std::string& b_;
  size_t pos_ = 0;
};

absl::Status Bad(const std::string& what) {
  return absl::DataLossError(absl::StrCat("serialized weights: ", what));
}

bool Dim(int32_t v) { return v > 0 && v <= kMaxDim; }

}  // namespace

std::string SerializeModelWeights(const ModelWeights& w) {
  Writer o;
  o.out.append(kMagic, 4);
  o.U32(kVersion);
  o.U32(static_cast<uint32_t>(w.convs.size()));
  for (const ConvWeights& c : w.convs) {
    o.I32(c.in_channels);
    o.I32(c.out_channels);
    o.Floats(c.kernel);
    o.Floats(c.bias);
  }
  o.U32(static_cast<uint32_t>(w.batch_norms.size()));
  for (const BatchNormWeights& b : w.batch_norms) {
    o.I32(b.channels);
    o.F32(b.epsilon);
    o.Floats(b.gamma);
    o.Floats(b.beta);
    o.Floats(b.moving_mean);
    o.Floats(b.moving_variance);
  }
  o.I32(w.dense.in_features);
  o.I32(w.dense.out_features);
  o.Floats(w.dense.kernel);
  o.Floats(w.dense.bias);
  return o.out;
}

absl::StatusOr<ModelWeights> DeserializeModelWeights(const std::string& bytes) {
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 4) != 0) return Bad("bad magic");
  Reader r(bytes);
  uint32_t magic, version, n;
  r.U32(&magic);
  r.U32(&version);
  if (version != kVersion) return Bad(absl::StrCat("unknown version ", version));
  ModelWeights w;
  if (!r.U32(&n) || n > 64) return Bad("bad convolution count");
  w.convs.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    ConvWeights& c = w.convs[i];
    if (!r.I32(&c.in_channels) || !r.I32(&c.out_channels) || !Dim(c.in_channels) ||
        !Dim(c.out_channels)) {
      return Bad(absl::StrCat("conv ", i, ": bad channel counts"));
    }
    if (!r.Floats(int64_t{c.out_channels} * 9 * c.in_channels, &c.kernel) ||
        !r.Floats(c.out_channels, &c.bias)) {
      return Bad(absl::StrCat("conv ", i, ": truncated"));
    }
  }
  if (!r.U32(&n) || n > 64) return Bad("bad batch-norm count");
  w.batch_norms.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    BatchNormWeights& b = w.batch_norms[i];
    if (!r.I32(&b.channels) || !Dim(b.channels) || !r.F32(&b.epsilon)) {
      return Bad(absl::StrCat("batch norm ", i, ": bad header"));
    }
    if (!r.Floats(b.channels, &b.gamma) || !r.Floats(b.channels, &b.beta) ||
        !r.Floats(b.channels, &b.moving_mean) || !r.Floats(b.channels, &b.moving_variance)) {
      return Bad(absl::StrCat("batch norm ", i, ": truncated"));
    }
  }
  DenseWeights& d = w.dense;
  if (!r.I32(&d.in_features) || !r.I32(&d.out_features) || !Dim(d.in_features) ||
      !Dim(d.out_features)) {
    return Bad("dense: bad sizes");
  }
  if (!r.Floats(int64_t{d.in_features} * d.out_features, &d.kernel) ||
      !r.Floats(d.out_features, &d.bias)) {
    return Bad("dense: truncated");
  }
  if (!r.done()) return Bad("trailing bytes");
  return w;
}

}  // namespace nanonas
