// Split, content hash, serialisation and Subset.
#include "common/data/dataset.h"

#include <openssl/sha.h>
#include <zlib.h>

#include <algorithm>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Dataset Make(int64_t n, InputShape shape = {3, 2, 3}) {
  Dataset d;
  d.shape = shape;
  d.class_names = {"cat", "dog", "emu"};
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i % 3));
    for (int64_t b = 0; b < d.image_bytes(); ++b) d.images.push_back(uint8_t(i * 7 + b));
  }
  return d;
}

TEST(SplitTest, IsDeterministicBySeedAndCoversEveryIndexOnce) {
  Dataset d = Make(100);
  absl::StatusOr<Split> a = SplitTrainValidation(d, 0.3, 7);
  absl::StatusOr<Split> b = SplitTrainValidation(d, 0.3, 7);
  absl::StatusOr<Split> c = SplitTrainValidation(d, 0.3, 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->train, b->train);
  EXPECT_EQ(a->validation, b->validation);
  EXPECT_NE(a->validation, c->validation);
  EXPECT_EQ(a->train.size(), 70u);
  EXPECT_EQ(a->validation.size(), 30u);
  std::set<int64_t> all(a->train.begin(), a->train.end());
  all.insert(a->validation.begin(), a->validation.end());
  EXPECT_EQ(all.size(), 100u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 99);
  // Shuffled, not the identity order.
  EXPECT_FALSE(std::is_sorted(a->train.begin(), a->train.end()));
}

TEST(SplitTest, RoundsDownButKeepsAtLeastOneValidationImage) {
  EXPECT_EQ(SplitTrainValidation(Make(10), 0.25, 1)->validation.size(), 2u);
  EXPECT_EQ(SplitTrainValidation(Make(3), 0.1, 1)->validation.size(), 1u);
  absl::StatusOr<Split> none = SplitTrainValidation(Make(5), 0.0, 1);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->validation.empty());
  EXPECT_EQ(none->train.size(), 5u);
}

TEST(SplitTest, RejectsBadFractionsAndEmptyTraining) {
  for (double f : {-0.1, 1.0, 1.5, std::nan("")}) {
    EXPECT_EQ(SplitTrainValidation(Make(10), f, 1).status().code(),
              absl::StatusCode::kInvalidArgument)
        << f;
  }
  absl::StatusOr<Split> s = SplitTrainValidation(Make(1), 0.3, 1);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("training side would be empty"));
  EXPECT_FALSE(SplitTrainValidation(Make(0), 0.0, 1).ok());
}

TEST(ContentHashTest, IsSha256OfTheSerialisedBody) {
  Dataset d = Make(4);
  const std::string hash = ContentHash(d);
  ASSERT_EQ(hash.size(), 64u);
  const std::string blob = SerializeDataset(d);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(blob.data()), blob.size() - 4, digest);
  char hex[65];
  for (int i = 0; i < 32; ++i) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
  EXPECT_EQ(hash, std::string(hex));
}

TEST(ContentHashTest, ChangesWithAnyPartOfTheContent) {
  const Dataset base = Make(5);
  const std::string h = ContentHash(base);
  EXPECT_EQ(h, ContentHash(Make(5)));
  Dataset pixel = base;
  pixel.images.back() ^= 1;
  Dataset label = base;
  label.labels[2] = 0;
  Dataset name = base;
  name.class_names[1] = "dog2";
  Dataset shape = base;
  shape.shape = {2, 3, 3};  // same bytes, other shape
  std::set<std::string> hashes = {h, ContentHash(pixel), ContentHash(label), ContentHash(name),
                                  ContentHash(shape)};
  EXPECT_EQ(hashes.size(), 5u);
}

TEST(SerializeTest, RoundTrips) {
  Dataset d = Make(6, {4, 3, 1});
  absl::StatusOr<Dataset> back = DeserializeDataset(SerializeDataset(d));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->shape, d.shape);
  EXPECT_EQ(back->labels, d.labels);
  EXPECT_EQ(back->class_names, d.class_names);
  EXPECT_EQ(back->images, d.images);
  EXPECT_EQ(ContentHash(*back), ContentHash(d));
}

TEST(SerializeTest, EveryTruncationIsInvalidArgument) {
  const std::string blob = SerializeDataset(Make(3));
  for (size_t n = 0; n < blob.size(); ++n) {
    absl::StatusOr<Dataset> d = DeserializeDataset(blob.substr(0, n));
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << "length " << n;
  }
  EXPECT_FALSE(DeserializeDataset(blob + "x").ok());
}

TEST(SerializeTest, EveryCorruptedByteIsInvalidArgument) {
  const std::string blob = SerializeDataset(Make(3));
  for (size_t i = 0; i < blob.size(); ++i) {
    std::string bad = blob;
    bad[i] = char(bad[i] ^ 0x41);
    absl::StatusOr<Dataset> d = DeserializeDataset(bad);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << "byte " << i;
  }
}

// Rewrites the CRC trailer so that only the structural checks can catch a change.
std::string Reseal(std::string blob) {
  blob.resize(blob.size() - 4);
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(blob.data()), static_cast<uInt>(blob.size())));
  for (int i = 0; i < 4; ++i) blob.push_back(char(crc >> (8 * i)));
  return blob;
}

TEST(SerializeTest, ValidatesFieldsEvenWithAValidChecksum) {
  const std::string blob = SerializeDataset(Make(3));
  // Header: magic 0..3, version 4, h 8, w 12, c 16, N 20..27, classes 28.
  std::string bad = blob;
  bad[16] = 2;  // channels 2
  EXPECT_THAT(std::string(DeserializeDataset(Reseal(bad)).status().message()),
              HasSubstr("bad image size"));
  bad = blob;
  bad[27] = char(0x7f);  // N near 2^63
  EXPECT_THAT(std::string(DeserializeDataset(Reseal(bad)).status().message()),
              HasSubstr("declares"));
  bad = blob;
  bad[4] = 9;
  EXPECT_THAT(std::string(DeserializeDataset(Reseal(bad)).status().message()),
              HasSubstr("version"));
  // Label of image 0 follows the names "cat", "dog", "emu" (3 x (4 + 3) bytes after offset 32).
  bad = blob;
  bad[32 + 21] = 3;
  EXPECT_THAT(std::string(DeserializeDataset(Reseal(bad)).status().message()),
              HasSubstr("label 3 of image 0"));
  bad = blob;
  bad[32] = char(0xff);  // first name length 255: runs past the blob's names
  EXPECT_FALSE(DeserializeDataset(Reseal(bad)).ok());
}

TEST(SubsetTest, CopiesTheGivenIndicesInOrder) {
  Dataset d = Make(5);
  Dataset s = Subset(d, {4, 1, 1});
  EXPECT_EQ(s.shape, d.shape);
  EXPECT_EQ(s.class_names, d.class_names);
  EXPECT_THAT(s.labels, ElementsAre(1, 1, 1));
  ASSERT_EQ(s.images.size(), 3u * d.image_bytes());
  EXPECT_TRUE(std::equal(s.image(0), s.image(0) + d.image_bytes(), d.image(4)));
  EXPECT_TRUE(std::equal(s.image(2), s.image(2) + d.image_bytes(), d.image(1)));
  EXPECT_EQ(Subset(d, {0, 9, -1}).size(), 1);  // indices outside the dataset are skipped
}

}  // namespace
}  // namespace nanonas
