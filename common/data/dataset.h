// Image classification datasets, decoded once into a compact uint8 (N, H, W, C) tensor.
//
// Thread-safety: a Dataset is a plain value (share it const); the functions keep no state and may
// run on any thread (LoadImageFolder decodes on threads of its own, FolderOptions::threads).
#ifndef NANONAS_COMMON_DATA_DATASET_H_
#define NANONAS_COMMON_DATA_DATASET_H_

#include <cstdint>
#include <istream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arch/architecture.h"

namespace nanonas {

// A labelled image set: N*H*W*C pixel bytes, NHWC, RGB order for 3 channels. The pixels are
// either owned (`images`) or a read-only view of memory held by `backing` (e.g. a memory-mapped
// dataset file, common/data/mapped.h): then `view` is set and `images` is empty. Readers use
// pixels() / pixel_bytes() / image(i), which work for both; code that builds a dataset fills
// `images`. Copying a viewed dataset shares the view (the backing lives while any copy does).
struct Dataset {
  InputShape shape;                      // H, W, C of every image
  std::vector<uint8_t> images;           // (N, H, W, C) when owned; empty for a view
  std::vector<int32_t> labels;           // (N), 0 .. classes-1
  std::vector<std::string> class_names;  // sorted; label i is class_names[i]
  const uint8_t* view = nullptr;         // (N, H, W, C) pixels held by `backing`, or null
  int64_t view_bytes = 0;                // bytes at `view`
  std::shared_ptr<const void> backing;   // keeps `view` valid

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int num_classes() const { return static_cast<int>(class_names.size()); }
  int64_t image_bytes() const {
    return static_cast<int64_t>(shape.height) * shape.width * shape.channels;
  }
  // The pixels, owned or viewed, and their byte count.
  const uint8_t* pixels() const { return view != nullptr ? view : images.data(); }
  int64_t pixel_bytes() const {
    return view != nullptr ? view_bytes : static_cast<int64_t>(images.size());
  }
  const uint8_t* image(int64_t i) const { return pixels() + i * image_bytes(); }
};

// A train/validation split of one dataset by index (no copies).
struct Split {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
};

enum class ColorMode { kRgb, kGrayscale };

struct FolderOptions {
  InputShape size;  // resize target; channels 3 = RGB, 1 = grayscale
  int64_t max_image_pixels =
      64LL * 1024 * 1024;  // larger images are rejected (decompression bombs)
  int64_t max_images = 2'000'000;
  // Decoding threads (>= 1). The result is identical for any count; with several failing files
  // the error names the first in load order.
  int threads = 1;
  // When set (e.g. a separate test folder loaded with the training set's class_names), the class
  // folders must be exactly these names and label i is class_names[i], in this order.
  std::vector<std::string> class_names;
};

// Loads root/<class>/*.{jpg,jpeg,png,bmp} (case-insensitive extensions), classes sorted by name
// like Keras' image_dataset_from_directory. Images are decoded with OpenCV, converted to RGB (or
// grayscale when size.channels == 1; colour files in a grayscale set are converted, grayscale
// files in an RGB set are replicated to 3 channels) and resized bilinearly to size.
// Errors (INVALID_ARGUMENT / NOT_FOUND) name the file or folder: missing root, no class folders,
// fewer than 2 classes, an empty class folder, an unreadable or corrupt image, a huge image.
// Details: files are ordered by name within a class; hidden files and folders (".name"), files
// of other types, files directly in root and sub-folders of a class folder are ignored (not
// recursed). The format is recognised from the file's signature, not its extension. Colour to
// grayscale uses 0.299 R + 0.587 G + 0.114 B (as PIL's convert("L")); alpha is dropped, 16-bit
// images are scaled to 8 bits and EXIF orientation is ignored (as Keras/PIL). Huge images are
// rejected from the header's width x height before any decoding (max_image_pixels); a JPEG
// without its end-of-image marker is rejected as truncated (libjpeg would pad it with grey).
// Decoding holds one image at a time besides the output tensor.
absl::StatusOr<Dataset> LoadImageFolder(const std::string& root, const FolderOptions& options);

// Loads Fashion-MNIST / MNIST IDX files (optionally .gz): images (N, 28, 28, 1) with labels.
// class_names are "0".."9" unless names are given.
absl::StatusOr<Dataset> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                const std::vector<std::string>& class_names = {});

// Fashion-MNIST from the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist):
// train = true for the 60,000 training images, false for the 10,000 test images. Class names are
// Fashion-MNIST's ("T-shirt/top", "Trouser", ...).
absl::StatusOr<Dataset> LoadFashionMnist(
    bool train, const std::string& dir = "/usr/share/datasets/fashion-mnist");

// Resizes (bilinear) and converts every image to `size` (a new dataset).
absl::StatusOr<Dataset> ResizeDataset(const Dataset& in, const InputShape& size);

// Deterministic stratification-free split like Keras: indices shuffled with `seed`, the last
// `validation_fraction` of them (rounded down, at least 1 if fraction > 0) are validation.
// INVALID_ARGUMENT if the fraction is outside [0, 1) or either side would be empty.
// Fraction 0 is allowed and gives an empty validation side (train on everything). The shuffle is
// Fisher-Yates over std::mt19937_64(seed), identical on every platform.
absl::StatusOr<Split> SplitTrainValidation(const Dataset& data, double validation_fraction,
                                           uint64_t seed);

// Content hash (hex SHA-256-like 64 chars) of shape, labels, class names and pixels: names a
// dataset at a given input size. Identical content gives the identical hash. It is exactly the
// SHA-256 of SerializeDataset(data) without its 4-byte CRC trailer, so a receiver can check a blob.
std::string ContentHash(const Dataset& data);

// Compact binary serialisation (header + class names + labels + pixels) for shipping a decoded
// dataset to workers and caching it on disk. Deserialize validates everything it reads.
// Layout (dataset.cc has it in full): "NNDS", version, H, W, C, N, class names, labels, pixels,
// then a CRC-32 of all that. Any truncation, extra byte or corruption gives INVALID_ARGUMENT.
// REQUIRES for SerializeDataset: pixel_bytes() == size() * image_bytes().
std::string SerializeDataset(const Dataset& data);
absl::StatusOr<Dataset> DeserializeDataset(const std::string& bytes);

// DeserializeDataset's validation of the serialised bytes at [bytes, bytes + size), with the same
// errors, but the pixels are not copied: the result's `view` points at them inside `bytes`
// (`images` empty, `backing` null: the caller keeps `bytes` alive, e.g. by setting `backing`).
// Class names and labels are copied. verify_checksum = false skips the CRC-32 (for bytes already
// verified, e.g. by their content hash). Used by MapDatasetFile (mapped.h).
absl::StatusOr<Dataset> ParseDatasetView(const char* bytes, size_t size, bool verify_checksum);

// A subset (copy) of the given indices, e.g. the first N of Fashion-MNIST for a quick demo.
// Indices outside [0, size()) are skipped (and logged as an error).
Dataset Subset(const Dataset& data, const std::vector<int64_t>& indices);

// --- Streaming serialisation (for files larger than memory: common/data/pack.h) ---

// The serialised body up to, not including, the pixels: "NNDS" .. class names .. labels. The
// whole body is this followed by the N*H*W*C pixels (SerializeDataset then appends the CRC-32).
std::string SerializeDatasetHead(const InputShape& shape,
                                 const std::vector<std::string>& class_names,
                                 const std::vector<int32_t>& labels);

// A serialised dataset's head as ReadDatasetHead found it.
struct DatasetHead {
  InputShape shape;
  std::vector<std::string> class_names;
  std::vector<int32_t> labels;  // (N)
  int64_t pixel_offset = 0;     // where the pixels start; == SerializeDatasetHead(...).size()
};

// Reads the head of a serialised dataset of `file_size` bytes from `in` (positioned at its first
// byte) with DeserializeDataset's checks and error texts, except the CRC-32, which the caller
// checks over the bytes it streams. Leaves `in` at the first pixel. INVALID_ARGUMENT when invalid.
absl::StatusOr<DatasetHead> ReadDatasetHead(std::istream& in, uint64_t file_size);

}  // namespace nanonas

#endif  // NANONAS_COMMON_DATA_DATASET_H_
