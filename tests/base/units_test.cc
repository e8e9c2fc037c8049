#include "common/base/units.h"

#include "gtest/gtest.h"

namespace nanonas {
namespace {

TEST(UnitsTest, ParsesBinaryAndDecimalSizes) {
  EXPECT_EQ(*ParseBytes("40KiB"), 40 * 1024);
  EXPECT_EQ(*ParseBytes("128 KiB"), 128 * 1024);
  EXPECT_EQ(*ParseBytes("1.5MiB"), 1536 * 1024);
  EXPECT_EQ(*ParseBytes("512MB"), 512000000);
  EXPECT_EQ(*ParseBytes("40960"), 40960);
  EXPECT_EQ(*ParseBytes("64k"), 65536);
}

TEST(UnitsTest, ParsesCountsWithSiMultipliers) {
  EXPECT_EQ(*ParseCount("2.73M"), 2730000);
  EXPECT_EQ(*ParseCount("400k"), 400000);
  EXPECT_EQ(*ParseCount("950"), 950);
}

TEST(UnitsTest, RejectsGarbageZeroAndUnknownUnits) {
  EXPECT_EQ(ParseBytes("lots").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBytes("0KiB").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseBytes("-4KiB").status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = ParseBytes("40 furlongs");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("furlongs"), absl::string_view::npos);
  EXPECT_FALSE(ParseCount("3X").ok());
}

TEST(UnitsTest, FormatsForHumans) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(40 * 1024), "40.0 KiB");
  EXPECT_EQ(FormatCount(2730000), "2.73 M");
}

}  // namespace
}  // namespace nanonas
