// Class-folder datasets: LoadImageFolder and ResizeDataset (the OpenCV side of nanonas_data), and
// the listing, decode and conversion they share with pack.cc (folder_internal.h).
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <system_error>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/data/dataset.h"
#include "common/data/folder_internal.h"
#include "common/data/image_header.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"
#include "opencv2/imgproc.hpp"

namespace nanonas {
namespace data_internal {
namespace {

namespace fs = std::filesystem;

bool IsHidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.empty() || name[0] == '.';
}

bool HasImageExtension(const fs::path& p) {
  const std::string ext = absl::AsciiStrToLower(p.extension().string());
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// Converts a decoded 8-bit image (1 channel gray, 3 channels BGR, or 3 channels RGB when
// `rgb_input`) to `size` and writes it, NHWC with RGB order, to `out`. Colour becomes gray with
// OpenCV's ITU-R 601 weights (0.299 R + 0.587 G + 0.114 B, as PIL's convert("L")); gray becomes
// RGB by replication. Resizing is bilinear (cv::INTER_LINEAR, half-pixel centres).
void ConvertInto(const cv::Mat& src, bool rgb_input, const InputShape& size, uint8_t* out) {
  cv::Mat converted;
  if (size.channels == 3) {
    if (src.channels() == 1) {
      cv::cvtColor(src, converted, cv::COLOR_GRAY2RGB);
    } else if (rgb_input) {
      converted = src;
    } else {
      cv::cvtColor(src, converted, cv::COLOR_BGR2RGB);
    }
  } else {
    if (src.channels() == 1) {
      converted = src;
    } else {
      cv::cvtColor(src, converted, rgb_input ? cv::COLOR_RGB2GRAY : cv::COLOR_BGR2GRAY);
    }
  }
  const int type = size.channels == 3 ? CV_8UC3 : CV_8UC1;
  cv::Mat dst(size.height, size.width, type, out);  // writes straight into the dataset
  if (converted.rows == size.height && converted.cols == size.width) {
    converted.copyTo(dst);
  } else {
    cv::resize(converted, dst, cv::Size(size.width, size.height), 0, 0, cv::INTER_LINEAR);
  }
  // cv::resize may reallocate dst only if its size/type differ; they do not, so out is filled.
}

absl::StatusOr<std::string> ReadFileBytes(const fs::path& path, int64_t max_bytes) {
  std::error_code ec;
  const auto file_size = fs::file_size(path, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read image ", path.string(), ": ", ec.message()));
  }
  if (static_cast<int64_t>(file_size) > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("image ", path.string(), " is too large (",
                                                   file_size, " bytes, limit ", max_bytes, ")"));
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes(file_size, '\0');
  if (!in || !in.read(bytes.data(), static_cast<std::streamsize>(file_size))) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read image ", path.string(), ": ", std::strerror(errno)));
  }
  return bytes;
}

// Decodes one file into `out` (size.height * size.width * size.channels bytes).
absl::Status DecodeInto(const fs::path& path, const FolderOptions& options, uint8_t* out) {
  // Compressed images are smaller than this; it only stops reading absurd files into memory.
  constexpr int64_t kSlack = 16 << 20;
  const int64_t max_bytes = options.max_image_pixels > (INT64_MAX - kSlack) / 8
                                ? INT64_MAX
                                : options.max_image_pixels * 8 + kSlack;
  NANONAS_ASSIGN_OR_RETURN(std::string bytes, ReadFileBytes(path, max_bytes));
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  absl::StatusOr<ImageHeader> header = ReadImageHeader(data, bytes.size());
  if (!header.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("corrupt image ", path.string(), ": ", header.status().message()));
  }
  if (header->width * header->height > options.max_image_pixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("image ", path.string(), " is too large to decode: ", header->width, "x",
                     header->height, " pixels (", ImageFormatName(header->format), "), limit ",
                     options.max_image_pixels, " pixels"));
  }
  try {
    // IMREAD_COLOR gives 8-bit BGR for every input (gray replicated, alpha dropped, 16-bit scaled);
    // EXIF orientation is ignored, as Keras (PIL) does.
    cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8UC1, bytes.data());
    cv::Mat img = cv::imdecode(raw, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    if (img.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("corrupt image ", path.string(), ": ",
                                                     ImageFormatName(header->format),
                                                     " decoder failed"));
    }
    if (img.cols != header->width || img.rows != header->height) {
      return absl::InvalidArgumentError(
          absl::StrCat("corrupt image ", path.string(), ": header says ", header->width, "x",
                       header->height, ", decoder gave ", img.cols, "x", img.rows));
    }
    ConvertInto(img, /*rgb_input=*/false, options.size, out);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("corrupt image ", path.string(), ": OpenCV: ", e.what()));
  }
  return absl::OkStatus();
}

struct ClassFiles {
  std::string name;
  std::vector<std::string> files;  // file names (not paths: a few bytes per image), sorted
};

// Calls visit(path) for each entry of `dir` that is not hidden. INVALID_ARGUMENT "cannot list
// <what> <dir>: ..." when the folder cannot be listed.
template <typename F>
absl::Status ListFolder(const fs::path& dir, const char* what, F&& visit) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (!IsHidden(p)) visit(p);
  }
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot list ", what, " ", dir.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ClassFiles>> ScanRoot(const fs::path& root, int64_t* ignored) {
  std::error_code ec;
  if (!fs::exists(root, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset folder ", root.string(), " does not exist"));
  }
  if (!fs::is_directory(root, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset path ", root.string(), " is not a folder"));
  }
  std::vector<ClassFiles> classes;
  int64_t root_images = 0;
  NANONAS_RETURN_IF_ERROR(ListFolder(root, "dataset folder", [&](const fs::path& p) {
    std::error_code is_dir_ec;
    if (fs::is_directory(p, is_dir_ec)) {
      classes.push_back({p.filename().string(), {}});
    } else if (HasImageExtension(p)) {
      ++root_images;
    }
  }));
  if (classes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset folder ", root.string(), " has no class folders",
        root_images > 0 ? absl::StrCat(" (", root_images,
                                       " images lie directly in it: put them in root/<class>/)")
                        : std::string(" (expected root/<class>/*.jpg|jpeg|png|bmp)")));
  }
  std::sort(classes.begin(), classes.end(),
            [](const ClassFiles& a, const ClassFiles& b) { return a.name < b.name; });
  for (ClassFiles& c : classes) {
    NANONAS_RETURN_IF_ERROR(ListFolder(root / c.name, "class folder", [&](const fs::path& p) {
      std::error_code is_dir_ec;
      if (HasImageExtension(p) && !fs::is_directory(p, is_dir_ec)) {
        c.files.push_back(p.filename().string());
      } else {
        ++*ignored;
      }
    }));
    std::sort(c.files.begin(), c.files.end());
  }
  return classes;
}

// Reorders `classes` to `names`; every folder must be one of them and every name a folder.
absl::Status OrderClasses(const std::string& root, const std::vector<std::string>& names,
                          std::vector<ClassFiles>* classes) {
  std::vector<ClassFiles> ordered;
  std::vector<std::string> missing;
  for (const std::string& name : names) {
    auto it = std::find_if(classes->begin(), classes->end(),
                           [&](const ClassFiles& c) { return c.name == name; });
    if (it == classes->end()) {
      missing.push_back(name);
    } else {
      ordered.push_back(std::move(*it));
      classes->erase(it);
    }
  }
  if (!missing.empty() || !classes->empty()) {
    std::vector<std::string> extra;
    for (const ClassFiles& c : *classes) extra.push_back(c.name);
    return absl::InvalidArgumentError(absl::StrCat(
        "class folders of ", root, " do not match the expected classes (",
        absl::StrJoin(names, ", "), ")",
        missing.empty() ? "" : absl::StrCat(": missing ", absl::StrJoin(missing, ", ")),
        extra.empty() ? "" : absl::StrCat(": unexpected ", absl::StrJoin(extra, ", "))));
  }
  *classes = std::move(ordered);
  return absl::OkStatus();
}

// The number of images in `classes`; INVALID_ARGUMENT when there are none, fewer than two
// classes, an empty class or more than options.max_images images.
absl::StatusOr<int64_t> CountImages(const std::string& root, const std::vector<ClassFiles>& classes,
                                    const FolderOptions& options) {
  int64_t total = 0;
  std::vector<std::string> empty;
  for (const ClassFiles& c : classes) {
    total += static_cast<int64_t>(c.files.size());
    if (c.files.empty()) empty.push_back((fs::path(root) / c.name).string());
  }
  if (total == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset folder ", root, " has no images (no .jpg, .jpeg, .png or .bmp files in its ",
        classes.size(), " class folders)"));
  }
  if (classes.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset folder ", root, " has only one class ('", classes[0].name,
                     "'): classification needs at least 2 class folders"));
  }
  if (!empty.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("empty class folder", empty.size() > 1 ? "s " : " ",
                     absl::StrJoin(empty, ", "), " (no .jpg, .jpeg, .png or .bmp files)"));
  }
  if (total > options.max_images) {
    return absl::InvalidArgumentError(absl::StrCat("dataset folder ", root, " has ", total,
                                                   " images, more than the limit of ",
                                                   options.max_images));
  }
  return total;
}

}  // namespace

absl::Status CheckShape(const InputShape& s, const char* what) {
  if (s.height <= 0 || s.width <= 0 || (s.channels != 1 && s.channels != 3)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", s.height, "x", s.width, "x", s.channels,
                     " is not a valid image size (height and width >= 1, channels 1 or 3)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<FolderListing> ListImageFolder(const std::string& root,
                                              const FolderOptions& options) {
  NANONAS_RETURN_IF_ERROR(CheckShape(options.size, "input size"));
  if (options.max_image_pixels <= 0 || options.max_images <= 0 || options.threads < 1) {
    return absl::InvalidArgumentError(
        "FolderOptions: max_image_pixels, max_images and threads must be positive");
  }
  int64_t ignored = 0;
  NANONAS_ASSIGN_OR_RETURN(std::vector<ClassFiles> classes, ScanRoot(root, &ignored));
  if (!options.class_names.empty()) {
    NANONAS_RETURN_IF_ERROR(OrderClasses(root, options.class_names, &classes));
  }
  NANONAS_ASSIGN_OR_RETURN(const int64_t total, CountImages(root, classes, options));
  if (ignored > 0) {
    NANONAS_LOG(INFO) << "dataset " << root << ": ignored " << ignored
                      << " entries that are not .jpg/.jpeg/.png/.bmp files";
  }
  FolderListing listing;
  listing.root = root;
  listing.files.reserve(static_cast<size_t>(total));
  listing.labels.reserve(static_cast<size_t>(total));
  for (size_t label = 0; label < classes.size(); ++label) {
    listing.class_names.push_back(classes[label].name);
    for (std::string& file : classes[label].files) {
      listing.files.push_back(std::move(file));
      listing.labels.push_back(static_cast<int32_t>(label));
    }
  }
  return listing;
}

// Each image has its own slot, so threads only share the next index and the first error; the
// error returned is that of the smallest failing index.
absl::Status DecodeImages(const FolderListing& listing, int64_t begin, int64_t end,
                          const FolderOptions& options, uint8_t* out) {
  const int64_t image_bytes =
      static_cast<int64_t>(options.size.height) * options.size.width * options.size.channels;
  std::atomic<int64_t> next{begin};
  std::mutex mu;
  int64_t error_index = end;  // guarded by mu: the smallest failing index so far
  absl::Status error;
  std::atomic<int64_t> stop_at{end};
  auto work = [&] {
    for (int64_t i = next++; i < stop_at.load(); i = next++) {
      absl::Status s = DecodeInto(listing.path(i), options, out + (i - begin) * image_bytes);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < error_index) {
          error_index = i;
          error = std::move(s);
          stop_at.store(i);
        }
      }
    }
  };
  const int threads = static_cast<int>(std::min<int64_t>(options.threads, end - begin));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return error;
}

absl::Status ConvertImages(const uint8_t* images, const InputShape& in, int64_t count,
                           const InputShape& size, uint8_t* out) {
  const int in_type = in.channels == 3 ? CV_8UC3 : CV_8UC1;
  const int64_t in_bytes = static_cast<int64_t>(in.height) * in.width * in.channels;
  const int64_t out_bytes = static_cast<int64_t>(size.height) * size.width * size.channels;
  try {
    for (int64_t i = 0; i < count; ++i) {
      cv::Mat src(in.height, in.width, in_type, const_cast<uint8_t*>(images + i * in_bytes));
      ConvertInto(src, /*rgb_input=*/true, size, out + i * out_bytes);
    }
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("resizing dataset: OpenCV: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace data_internal

absl::StatusOr<Dataset> LoadImageFolder(const std::string& root, const FolderOptions& options) {
  NANONAS_ASSIGN_OR_RETURN(data_internal::FolderListing listing,
                           data_internal::ListImageFolder(root, options));
  Dataset ds;
  ds.shape = options.size;
  ds.images.resize(static_cast<size_t>(listing.size() * ds.image_bytes()));
  NANONAS_RETURN_IF_ERROR(
      data_internal::DecodeImages(listing, 0, listing.size(), options, ds.images.data()));
  ds.class_names = std::move(listing.class_names);
  ds.labels = std::move(listing.labels);
  return ds;
}

absl::StatusOr<Dataset> ResizeDataset(const Dataset& in, const InputShape& size) {
  NANONAS_RETURN_IF_ERROR(data_internal::CheckShape(size, "target size"));
  NANONAS_RETURN_IF_ERROR(data_internal::CheckShape(in.shape, "dataset image size"));
  if (in.pixel_bytes() != in.size() * in.image_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dataset holds ", in.pixel_bytes(), " pixel bytes, expected ",
                     in.size() * in.image_bytes(), " for ", in.size(), " images"));
  }
  Dataset out;
  out.shape = size;
  out.labels = in.labels;
  out.class_names = in.class_names;
  out.images.resize(static_cast<size_t>(out.size() * out.image_bytes()));
  NANONAS_RETURN_IF_ERROR(
      data_internal::ConvertImages(in.pixels(), in.shape, in.size(), size, out.images.data()));
  return out;
}

}  // namespace nanonas
