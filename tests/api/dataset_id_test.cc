#include "common/api/dataset_id.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

TEST(ApiDatasetIdTest, AcceptsPrefixedAndBareHex) {
  const std::string hex(64, 'a');
  EXPECT_EQ(DatasetIdHex("sha256:" + hex).value(), hex);
  EXPECT_EQ(DatasetIdHex(hex).value(), hex);
  EXPECT_EQ(DatasetIdFromHex(hex), "sha256:" + hex);
  EXPECT_TRUE(IsSha256Hex("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
}

// Moved from tests/worker/dataset_cache_test.cc with the parser.
TEST(ApiDatasetIdTest, RejectsIdsThatAreNotContentHashes) {
  EXPECT_FALSE(DatasetIdHex("../../etc/passwd").ok());
  EXPECT_FALSE(DatasetIdHex("sha256:xyz").ok());
  EXPECT_EQ(DatasetIdHex("sha256:" + std::string(64, 'a')).value(), std::string(64, 'a'));
}

TEST(ApiDatasetIdTest, EveryMalformedIdSaysTheExpectedForm) {
  for (const std::string& id : {std::string("../../etc/passwd"), std::string("sha256:xyz"),
                                "sha256:" + std::string(64, 'A'), std::string(63, 'a'),
                                "md5:" + std::string(64, 'a'), std::string()}) {
    auto r = DatasetIdHex(id);
    ASSERT_FALSE(r.ok()) << id;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), testing::HasSubstr("64 lowercase hex"));
  }
}

}  // namespace
}  // namespace nanonas
