#include "common/api/dataset_id.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nanonas {

bool IsSha256Hex(absl::string_view text) {
  if (text.size() != 64) return false;
  for (char ch : text) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<std::string> DatasetIdHex(absl::string_view id) {
  absl::string_view hex = id;
  if (absl::StartsWith(hex, kDatasetIdPrefix)) hex.remove_prefix(sizeof(kDatasetIdPrefix) - 1);
  if (!IsSha256Hex(hex)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dataset id '", id, "' is malformed: expected 'sha256:' and 64 lowercase hex digits"));
  }
  return std::string(hex);
}

std::string DatasetIdFromHex(absl::string_view hex) { return absl::StrCat(kDatasetIdPrefix, hex); }

}  // namespace nanonas
