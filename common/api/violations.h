// How a broken MCU / host limit (v1::Violation) reads to a person, written once. Figures use
// human units: bytes as KiB/MiB, MACC as counts (2.73M). Pure; thread-safe.
#ifndef NANONAS_COMMON_API_VIOLATIONS_H_
#define NANONAS_COMMON_API_VIOLATIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/resources/figures.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas {

// A figure of `resource` ("ram_bytes", "flash_bytes", "macc", "host_memory_bytes"):
// FormatCount for "macc", FormatBytes for the others.
std::string FormatResourceFigure(absl::string_view resource, int64_t value);

// The resource model's violation (common/resources/figures.h) as the API's message, and back.
nanonas::v1::Violation ToProto(const Violation& violation);
Violation FromProto(const nanonas::v1::Violation& violation);

// "ram_bytes 48.8KiB exceeds the limit 40KiB by 8.8KiB" (a candidate's error text).
std::string DescribeViolation(const Violation& violation);
std::string DescribeViolation(const nanonas::v1::Violation& violation);
// Each violation as above, joined by "; ".
std::string DescribeViolations(const std::vector<Violation>& violations);
// Each violation as above, joined by "; ".
std::string DescribeViolations(
    const google::protobuf::RepeatedPtrField<nanonas::v1::Violation>& violations);

// The short raw form of tables and logs: "ram_bytes 50000 > 40960", plus " by 9040" when
// `with_excess`.
std::string ViolationBrief(const nanonas::v1::Violation& violation, bool with_excess);

}  // namespace nanonas

#endif  // NANONAS_COMMON_API_VIOLATIONS_H_
