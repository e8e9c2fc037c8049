#include "common/api/violations.h"

#include "absl/strings/str_cat.h"
#include "common/base/units.h"

namespace nanonas {

std::string FormatResourceFigure(absl::string_view resource, int64_t value) {
  if (resource == "macc") return FormatCount(value);
  return FormatBytes(value);
}

nanonas::v1::Violation ToProto(const Violation& v) {
  nanonas::v1::Violation out;
  out.set_resource(v.resource);
  out.set_value(v.value);
  out.set_limit(v.limit);
  out.set_excess(v.excess);
  return out;
}

Violation FromProto(const nanonas::v1::Violation& v) {
  return Violation{v.resource(), v.value(), v.limit(), v.excess()};
}

std::string DescribeViolation(const Violation& v) {
  return absl::StrCat(v.resource, " ", FormatResourceFigure(v.resource, v.value),
                      " exceeds the limit ", FormatResourceFigure(v.resource, v.limit), " by ",
                      FormatResourceFigure(v.resource, v.excess));
}

std::string DescribeViolation(const nanonas::v1::Violation& v) {
  return DescribeViolation(FromProto(v));
}

std::string DescribeViolations(const std::vector<Violation>& violations) {
  std::string out;
  for (const Violation& v : violations) {
    absl::StrAppend(&out, out.empty() ? "" : "; ", DescribeViolation(v));
  }
  return out;
}

std::string DescribeViolations(
    const google::protobuf::RepeatedPtrField<nanonas::v1::Violation>& violations) {
  std::vector<Violation> vs;
  for (const auto& v : violations) vs.push_back(FromProto(v));
  return DescribeViolations(vs);
}

std::string ViolationBrief(const nanonas::v1::Violation& v, bool with_excess) {
  std::string out = absl::StrCat(v.resource(), " ", v.value(), " > ", v.limit());
  if (with_excess) absl::StrAppend(&out, " by ", v.excess());
  return out;
}

}  // namespace nanonas
