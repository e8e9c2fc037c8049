// IDX files (MNIST, Fashion-MNIST), plain or gzipped: LoadIdx and LoadFashionMnist.
#include <zlib.h>

#include <filesystem>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/data/dataset.h"

namespace nanonas {
namespace {

// Largest IDX payload accepted: far above Fashion-MNIST's 47 MB, below a bomb that fills memory.
constexpr int64_t kMaxIdxBytes = int64_t{4} << 30;

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// Reads exactly n bytes (gzread reads plain files transparently). INVALID_ARGUMENT if the file
// ends first or the gzip stream is corrupt.
absl::Status ReadExactly(gzFile f, const std::string& path, void* out, int64_t n,
                         const char* what) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(n, 1 << 30));
    const int got = gzread(f, p, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      return absl::InvalidArgumentError(
          absl::StrCat("IDX file ", path, ": corrupt gzip data while reading ", what, ": ", msg));
    }
    if (got == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("IDX file ", path, " is truncated (ends inside its ", what, ")"));
    }
    p += got;
    n -= got;
  }
  return absl::OkStatus();
}

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Reads an unsigned-byte IDX array with `want_dims` dimensions (magic 0x0000 08 0N).
absl::StatusOr<IdxArray> ReadIdx(const std::string& path, int want_dims) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("IDX file ", path, " does not exist"));
  }
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) return absl::InvalidArgumentError(absl::StrCat("cannot open IDX file ", path));
  uint8_t magic[4];
  NANONAS_RETURN_IF_ERROR(ReadExactly(f.get(), path, magic, 4, "magic number"));
  if (magic[0] != 0 || magic[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "IDX file ", path, " has a bad magic number (first two bytes must be 0; not an IDX file)"));
  }
  if (magic[2] != 0x08) {
    return absl::InvalidArgumentError(absl::StrCat("IDX file ", path, " holds data type 0x",
                                                   absl::Hex(magic[2], absl::kZeroPad2),
                                                   ", only unsigned bytes (0x08) are supported"));
  }
  if (magic[3] != want_dims) {
    return absl::InvalidArgumentError(
        absl::StrCat("IDX file ", path, " has ", magic[3], " dimensions, expected ", want_dims));
  }
  IdxArray a;
  int64_t total = 1;
  for (int i = 0; i < want_dims; ++i) {
    uint8_t b[4];
    NANONAS_RETURN_IF_ERROR(ReadExactly(f.get(), path, b, 4, "dimensions"));
    const int64_t d = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    if (d <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("IDX file ", path, " has dimension ", i, " of size ", d));
    }
    a.dims.push_back(d);
    if (total > kMaxIdxBytes / d) {
      return absl::InvalidArgumentError(
          absl::StrCat("IDX file ", path, " declares more than ", kMaxIdxBytes, " bytes"));
    }
    total *= d;
  }
  a.data.resize(static_cast<size_t>(total));
  NANONAS_RETURN_IF_ERROR(ReadExactly(f.get(), path, a.data.data(), total, "data"));
  char extra;
  const int more = gzread(f.get(), &extra, 1);
  if (more != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "IDX file ", path,
        more > 0 ? " is longer than its dimensions say" : " has corrupt gzip data at its end"));
  }
  return a;
}

const char* const kFashionMnistClasses[] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                            "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                            "Bag",         "Ankle boot"};

}  // namespace

absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                const std::vector<std::string>& class_names) {
  NANONAS_ASSIGN_OR_RETURN(IdxArray images, ReadIdx(images_path, 3));
  NANONAS_ASSIGN_OR_RETURN(IdxArray labels, ReadIdx(labels_path, 1));
  if (images.dims[0] != labels.dims[0]) {
    return absl::InvalidArgumentError(absl::StrCat("IDX images ", images_path, " hold ",
                                                   images.dims[0], " images but labels ",
                                                   labels_path, " hold ", labels.dims[0]));
  }
  if (images.dims[1] > 65535 || images.dims[2] > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("IDX images ", images_path, " are ", images.dims[1], "x", images.dims[2]));
  }
  Dataset ds;
  ds.shape = {static_cast<int>(images.dims[1]), static_cast<int>(images.dims[2]), 1};
  if (class_names.empty()) {
    for (int i = 0; i < 10; ++i) ds.class_names.push_back(std::to_string(i));
  } else {
    ds.class_names = class_names;
  }
  ds.labels.reserve(labels.data.size());
  for (size_t i = 0; i < labels.data.size(); ++i) {
    const int label = labels.data[i];
    if (label >= static_cast<int>(ds.class_names.size())) {
      return absl::InvalidArgumentError(absl::StrCat("IDX labels ", labels_path, ": label ", label,
                                                     " at index ", i, " is outside the ",
                                                     ds.class_names.size(), " classes"));
    }
    ds.labels.push_back(label);
  }
  ds.images = std::move(images.data);
  return ds;
}

absl::StatusOr<Dataset> LoadFashionMnist(bool train, const std::string& dir) {
  const std::string prefix = train ? "train" : "t10k";
  auto pick = [&](const std::string& base) {
    const std::string gz = absl::StrCat(dir, "/", base, ".gz");
    std::error_code ec;
    return std::filesystem::exists(gz, ec) ? gz : absl::StrCat(dir, "/", base);
  };
  const std::string images = pick(prefix + "-images-idx3-ubyte");
  const std::string labels = pick(prefix + "-labels-idx1-ubyte");
  std::error_code ec;
  if (!std::filesystem::exists(images, ec) || !std::filesystem::exists(labels, ec)) {
    return absl::NotFoundError(absl::StrCat("Fashion-MNIST not found in ", dir,
                                            " (install the Debian package dataset-fashion-mnist,",
                                            " e.g. scripts/setup.sh)"));
  }
  return LoadIdx(
      images, labels,
      std::vector<std::string>(std::begin(kFashionMnistClasses), std::end(kFashionMnistClasses)));
}

}  // namespace nanonas
