// A serialised dataset file (SerializeDataset's bytes, e.g. a worker's cached dataset) read in
// place: the file is memory-mapped read-only and shared (MAP_SHARED), the returned Dataset's
// pixels are a view into the mapping, and only the class names and labels are copied. The pixels
// are file-backed page-cache memory: processes mapping the same file share one copy, and the
// kernel may drop those pages under memory pressure and read them again. So a mapped dataset
// adds its labels (4 bytes an image) to the process's anonymous memory, not its pixels.
//
//   NANONAS_ASSIGN_OR_RETURN(Dataset data, MapDatasetFile(path, /*verify_checksum=*/false));
//   Train(arch, data, split, options);  // reads data.pixels() from the mapping
//
// The mapping lives as long as the Dataset or any copy of it (Dataset::backing). The file must
// not be truncated or rewritten while mapped (the worker's cache only ever renames complete files
// into place and deletes them, which keeps a mapping valid).
//
// Thread-safety: MapDatasetFile keeps no state; a mapped Dataset is read-only and may be shared.
#ifndef NANONAS_COMMON_DATA_MAPPED_H_
#define NANONAS_COMMON_DATA_MAPPED_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace nanonas {

// Maps the file at `path` and validates it as DeserializeDataset does (INVALID_ARGUMENT with the
// same texts for a truncated or corrupt file, labels outside the classes). verify_checksum checks
// the CRC-32 trailer by streaming over the mapping (no copy; it reads the whole file once).
// NOT_FOUND when the file cannot be opened; INTERNAL when it cannot be mapped. The pixel pages are
// advised for random access (MADV_RANDOM: training reads images in shuffled batches).
absl::StatusOr<Dataset> MapDatasetFile(const std::string& path, bool verify_checksum);

}  // namespace nanonas

#endif  // NANONAS_COMMON_DATA_MAPPED_H_
