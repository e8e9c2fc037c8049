// Streams a dataset folder (root/<class>/<image files>) as a tar archive (libarchive, pax
// restricted, entries named <class>/<file>) in bounded chunks, for UploadDataset: the folder is
// listed first (names and sizes), then each file is read in pieces and the archive handed to a
// sink chunk by chunk; at most one chunk and one read buffer are held, whatever the folder's
// size. Stateless functions; thread-compatible.
#ifndef NANONAS_CLIENT_TAR_WRITER_H_
#define NANONAS_CLIENT_TAR_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nanonas {

struct DatasetFile {
  std::string path;  // on disk
  std::string name;  // in the archive: <class>/<file>
  int64_t size = 0;  // bytes, as listed
};

struct DatasetListing {
  std::vector<DatasetFile> files;  // sorted by class, then file name
  int classes = 0;
  int64_t file_bytes = 0;  // the sum of the files' sizes
};

// Lists `dir`'s class sub-folders and their regular files; hidden entries and non-regular files
// are skipped. NOT_FOUND when `dir` does not exist, INVALID_ARGUMENT when it is not a folder,
// holds no class sub-folders or no files in them.
absl::StatusOr<DatasetListing> ListDatasetFolder(const std::string& dir);

// The exact size in bytes of the archive StreamTar writes for `listing` (libarchive writes the
// headers and zero data into a counter; no file is read).
absl::StatusOr<int64_t> TarArchiveSize(const DatasetListing& listing);

// Receives the archive in order; returns false to stop (the stream broke).
using TarSink = std::function<bool(absl::string_view chunk)>;

struct TarStreamStats {
  int64_t bytes = 0;        // archive bytes handed to the sink
  int64_t chunks = 0;       // sink calls
  size_t max_chunk = 0;     // the largest chunk handed to the sink (<= chunk_bytes)
  size_t max_buffered = 0;  // the most archive bytes held at once (<= chunk_bytes)
};

// Writes the archive of `listing` to `sink` in chunks of exactly `chunk_bytes` (the last one
// shorter). Each file is read in pieces of at most `chunk_bytes`. ABORTED when the sink returned
// false; INVALID_ARGUMENT when a file cannot be read or is shorter than listed (it changed since
// the listing; a file that grew is cut at its listed size). REQUIRES: chunk_bytes > 0.
absl::StatusOr<TarStreamStats> StreamTar(const DatasetListing& listing, size_t chunk_bytes,
                                         const TarSink& sink);

}  // namespace nanonas

#endif  // NANONAS_CLIENT_TAR_WRITER_H_
