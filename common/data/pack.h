// Packing: decoding a dataset straight into a serialised dataset file (dataset.h's NNDS format)
// in bounded memory, whatever the number of images. The file is byte-identical to what
// SerializeDataset would give for the same dataset decoded in memory, and its content hash is
// computed as it is written.
//
// Memory: the listing (a path and a label per image) plus one chunk of pixels
// (PackChunking: at most max_images images and max_bytes bytes, whichever is fewer images).
//
// Thread-safety: the functions keep no state and may run on any thread, several at once (on
// different out_paths). progress and cancelled are called on the calling thread.
#ifndef NANONAS_COMMON_DATA_PACK_H_
#define NANONAS_COMMON_DATA_PACK_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/arch/architecture.h"
#include "common/data/dataset.h"

namespace nanonas {

struct PackProgress {
  int64_t images_done = 0;
  int64_t images_total = 0;
};
using PackProgressFn = std::function<void(const PackProgress&)>;

// How many images are decoded (and held) at once: the fewest of max_images and as many as fit in
// max_bytes (at least one image).
struct PackChunking {
  int64_t max_images = 4096;
  int64_t max_bytes = 32LL << 20;
};

struct PackedDataset {
  std::string content_hex;  // == ContentHash of the equivalent in-memory Dataset
  InputShape shape;
  int64_t num_images = 0;
  int64_t file_bytes = 0;   // size of the written file (body + CRC-32)
  int64_t pixel_bytes = 0;  // N * H * W * C
  std::vector<std::string> class_names;
  // The largest pixel buffer held at once (bytes): one chunk, never all N images.
  int64_t peak_buffer_bytes = 0;
};

// Decodes root/<class>/<images> at options.size and writes the serialised dataset to out_path:
// byte-identical to SerializeDataset(*LoadImageFolder(root, options)), with the same validation
// and the same error texts (naming the file). Lists the folder first (N and the labels are
// written before the pixels), then decodes chunks of images on options.threads threads and
// appends them; SHA-256 and CRC-32 are computed as the bytes are written. `progress` is called
// after each chunk; `cancelled` (may be null) is polled before each chunk (CANCELLED).
// The file is written under a temporary name in out_path's folder and renamed at the end: on any
// error nothing is left behind and an existing out_path is untouched. INTERNAL for I/O errors.
absl::StatusOr<PackedDataset> PackImageFolder(const std::string& root, const FolderOptions& options,
                                              const std::string& out_path,
                                              const PackProgressFn& progress = nullptr,
                                              const std::function<bool()>& cancelled = nullptr,
                                              const PackChunking& chunking = PackChunking());

// The same for a serialised dataset file (an uploaded nanonas dataset) converted to `size`,
// streamed in chunks (never the whole file in memory): identical to
// SerializeDataset(*ResizeDataset(*DeserializeDataset(contents), size)). A corrupt input file is
// INVALID_ARGUMENT (DeserializeDataset's texts; its checksum is checked as it is read, so a
// mismatch is found only at the end, and then nothing is left behind either).
absl::StatusOr<PackedDataset> PackDatasetFile(const std::string& nnds_path, const InputShape& size,
                                              const std::string& out_path,
                                              const PackProgressFn& progress = nullptr,
                                              const std::function<bool()>& cancelled = nullptr,
                                              const PackChunking& chunking = PackChunking());

// Validates a serialised dataset file as DeserializeDataset would (every field, the checksum) by
// streaming it in chunks, and describes it (content_hex, shape, counts, class names; file_bytes is
// the file's size). INVALID_ARGUMENT when it is not a valid dataset, NOT_FOUND when unreadable.
absl::StatusOr<PackedDataset> InspectDatasetFile(const std::string& nnds_path,
                                                 const PackChunking& chunking = PackChunking());

}  // namespace nanonas

#endif  // NANONAS_COMMON_DATA_PACK_H_
