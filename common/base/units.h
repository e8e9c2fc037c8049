// Human units for sizes and counts, as users type them on the command line.
#ifndef NANONAS_COMMON_BASE_UNITS_H_
#define NANONAS_COMMON_BASE_UNITS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nanonas {

// Parses a byte size: "40960", "40KiB", "128 KiB", "1.5MiB", "512MB", "2GB", "64k" (k/K = KiB).
// Binary suffixes (KiB, MiB, GiB) are powers of 1024, decimal ones (kB, MB, GB) powers of 1000.
// Returns INVALID_ARGUMENT naming the text for anything else, zero or negative values.
absl::StatusOr<int64_t> ParseBytes(absl::string_view text);

// Parses a count with an optional SI multiplier: "2730000", "2.73M", "400k", "1.2G".
absl::StatusOr<int64_t> ParseCount(absl::string_view text);

// "40 KiB", "1.50 MiB", "512 B".
std::string FormatBytes(int64_t bytes);
// "2.73 M", "400.0 k", "950".
std::string FormatCount(int64_t count);

}  // namespace nanonas

#endif  // NANONAS_COMMON_BASE_UNITS_H_
