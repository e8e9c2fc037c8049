// Packs a dataset folder (root/<class>/<image files>) into an in-memory tar archive with
// libarchive, entries named <class>/<file>, for UploadDataset.
#ifndef NANONAS_CLIENT_TAR_WRITER_H_
#define NANONAS_CLIENT_TAR_WRITER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace nanonas {

struct TarredFolder {
  std::string bytes;
  int64_t files = 0;
  int classes = 0;
};

// NOT_FOUND when `dir` does not exist, INVALID_ARGUMENT when it is not a folder or holds no
// class sub-folders; hidden files and non-regular files are skipped. `max_bytes` bounds the
// archive (RESOURCE_EXHAUSTED beyond it).
absl::StatusOr<TarredFolder> TarDatasetFolder(const std::string& dir, int64_t max_bytes);

}  // namespace nanonas

#endif  // NANONAS_CLIENT_TAR_WRITER_H_
