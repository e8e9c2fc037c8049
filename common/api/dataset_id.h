// Dataset ids: "sha256:" followed by the 64 lower-case hex digits of a content hash (the bare
// hex is accepted too). The one parser the coordinator's registry, the worker's cache and the
// tools share; the hex it returns is safe in file names. Pure; thread-safe.
#ifndef NANONAS_COMMON_API_DATASET_ID_H_
#define NANONAS_COMMON_API_DATASET_ID_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nanonas {

inline constexpr char kDatasetIdPrefix[] = "sha256:";

// Exactly 64 characters of 0-9a-f.
bool IsSha256Hex(absl::string_view text);

// "sha256:<hex>" or "<hex>" -> "<hex>". INVALID_ARGUMENT saying the expected form otherwise.
absl::StatusOr<std::string> DatasetIdHex(absl::string_view id);

// "<hex>" -> "sha256:<hex>".
std::string DatasetIdFromHex(absl::string_view hex);

}  // namespace nanonas

#endif  // NANONAS_COMMON_API_DATASET_ID_H_
