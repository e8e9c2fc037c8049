// The parts of class-folder loading shared by LoadImageFolder (in memory, folder.cc) and
// PackImageFolder (streamed to a file, pack.cc): one listing, one per-image decode, one
// conversion. Internal to nanonas_data; other code uses dataset.h and pack.h.
//
// Thread-safety: pure functions; DecodeImages runs threads of its own.
#ifndef NANONAS_COMMON_DATA_FOLDER_INTERNAL_H_
#define NANONAS_COMMON_DATA_FOLDER_INTERNAL_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace nanonas::data_internal {

// A validated class folder in load order: image i is root/<class_names[labels[i]]>/<files[i]>.
// File names rather than paths keep it small (tens of bytes an image; a std::filesystem::path
// also holds its parsed components, hundreds).
struct FolderListing {
  std::string root;
  std::vector<std::string> class_names;  // label i is class_names[i]
  std::vector<std::string> files;        // file names within their class folder
  std::vector<int32_t> labels;
  int64_t size() const { return static_cast<int64_t>(files.size()); }
  std::filesystem::path path(int64_t i) const {
    return std::filesystem::path(root) / class_names[labels[i]] / files[i];
  }
};

// Checks `options`, lists root/<class>/<images> and validates the listing (LoadImageFolder's
// rules and error texts, in dataset.h). Nothing is decoded.
absl::StatusOr<FolderListing> ListImageFolder(const std::string& root,
                                              const FolderOptions& options);

// Decodes images [begin, end) of `listing` into out + (i - begin) * image_bytes on
// options.threads threads. The result is the same for any thread count; the error is that of the
// first failing file.
absl::Status DecodeImages(const FolderListing& listing, int64_t begin, int64_t end,
                          const FolderOptions& options, uint8_t* out);

// Converts `count` images of shape `in` (NHWC, RGB or gray) to `size`, as ResizeDataset does.
absl::Status ConvertImages(const uint8_t* images, const InputShape& in, int64_t count,
                           const InputShape& size, uint8_t* out);

// INVALID_ARGUMENT "<what> HxWxC is not a valid image size ..." unless H, W >= 1 and C is 1 or 3.
absl::Status CheckShape(const InputShape& s, const char* what);

}  // namespace nanonas::data_internal

#endif  // NANONAS_COMMON_DATA_FOLDER_INTERNAL_H_
