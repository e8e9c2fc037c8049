#include "common/api/violations.h"

#include "common/base/units.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {
namespace v1 = nanonas::v1;

v1::Violation Make(const std::string& resource, int64_t value, int64_t limit) {
  v1::Violation v;
  v.set_resource(resource);
  v.set_value(value);
  v.set_limit(limit);
  v.set_excess(value - limit);
  return v;
}

TEST(ApiViolationsTest, FiguresUseHumanUnitsPerResource) {
  EXPECT_EQ(FormatResourceFigure("macc", 2730000), "2.73 M");
  EXPECT_EQ(FormatResourceFigure("ram_bytes", 40960), "40.0 KiB");
  EXPECT_EQ(FormatResourceFigure("flash_bytes", 131072), FormatBytes(131072));
  EXPECT_EQ(FormatResourceFigure("host_memory_bytes", 512), "512 B");
}

TEST(ApiViolationsTest, DescribesEachBrokenLimit) {
  google::protobuf::RepeatedPtrField<v1::Violation> vs;
  *vs.Add() = Make("ram_bytes", 51200, 40960);
  const std::string ram = "ram_bytes " + FormatBytes(51200) + " exceeds the limit " +
                          FormatBytes(40960) + " by " + FormatBytes(10240);
  EXPECT_EQ(DescribeViolations(vs), ram);
  *vs.Add() = Make("macc", 3000000, 2730000);
  EXPECT_EQ(DescribeViolations(vs), ram + "; macc " + FormatCount(3000000) + " exceeds the limit " +
                                        FormatCount(2730000) + " by " + FormatCount(270000));
  EXPECT_EQ(DescribeViolation(vs[1]), "macc " + FormatCount(3000000) + " exceeds the limit " +
                                          FormatCount(2730000) + " by " + FormatCount(270000));
  EXPECT_EQ(DescribeViolations(google::protobuf::RepeatedPtrField<v1::Violation>()), "");
}

TEST(ApiViolationsTest, BriefFormKeepsRawNumbers) {
  const v1::Violation v = Make("ram_bytes", 50000, 40960);
  EXPECT_EQ(ViolationBrief(v, true), "ram_bytes 50000 > 40960 by 9040");
  EXPECT_EQ(ViolationBrief(v, false), "ram_bytes 50000 > 40960");
}

}  // namespace
TEST(ViolationTextTest, TheResourceModelsViolationsReadTheSameAsTheMessages) {
  const std::vector<Violation> vs = {{"ram_bytes", 80 << 10, 64 << 10, 16 << 10},
                                     {"macc", 2730000, 400000, 2330000}};
  EXPECT_EQ(DescribeViolations(vs),
            "ram_bytes 80.0 KiB exceeds the limit 64.0 KiB by 16.0 KiB; "
            "macc 2.73 M exceeds the limit 400.0 k by 2.33 M");
  google::protobuf::RepeatedPtrField<v1::Violation> protos;
  for (const Violation& v : vs) *protos.Add() = ToProto(v);
  EXPECT_EQ(DescribeViolations(protos), DescribeViolations(vs));
  EXPECT_EQ(FromProto(ToProto(vs[1])), vs[1]);
  EXPECT_EQ(DescribeViolations(std::vector<Violation>{}), "");
}

}  // namespace nanonas
