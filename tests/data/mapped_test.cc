// MapDatasetFile: a serialised dataset file read in place (pixels a view into the mapping).
#include "common/data/mapped.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace nanonas {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

Dataset Make(int64_t n, InputShape shape = {5, 4, 3}) {
  Dataset d;
  d.shape = shape;
  d.class_names = {"cat", "dog", "emu"};
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i % 3));
    for (int64_t b = 0; b < d.image_bytes(); ++b) d.images.push_back(uint8_t(i * 7 + b));
  }
  return d;
}

class MappedDatasetTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("nanonas-mapped-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  fs::path dir_;
};

TEST_F(MappedDatasetTest, EqualsTheDeserializedDatasetWithPixelsInTheMapping) {
  const std::string blob = SerializeDataset(Make(9));
  const std::string path = Write("d.nnds", blob);
  absl::StatusOr<Dataset> decoded = DeserializeDataset(blob);
  ASSERT_TRUE(decoded.ok());
  for (bool verify : {false, true}) {
    absl::StatusOr<Dataset> mapped = MapDatasetFile(path, verify);
    ASSERT_TRUE(mapped.ok()) << mapped.status();
    EXPECT_EQ(mapped->shape, decoded->shape);
    EXPECT_EQ(mapped->labels, decoded->labels);
    EXPECT_EQ(mapped->class_names, decoded->class_names);
    ASSERT_EQ(mapped->pixel_bytes(), static_cast<int64_t>(decoded->images.size()));
    EXPECT_TRUE(std::equal(decoded->images.begin(), decoded->images.end(), mapped->pixels()));
    // A view into the mapping, not a copy: nothing owned, the mapping kept alive by `backing`.
    EXPECT_TRUE(mapped->images.empty());
    ASSERT_NE(mapped->pixels(), nullptr);
    EXPECT_NE(mapped->backing, nullptr);
    EXPECT_EQ(mapped->image(1), mapped->pixels() + mapped->image_bytes());
    EXPECT_EQ(ContentHash(*mapped), ContentHash(*decoded));
    EXPECT_EQ(SerializeDataset(*mapped), blob);
  }
}

TEST_F(MappedDatasetTest, TheMappingOutlivesTheFileAndStaysWithCopies) {
  const std::string path = Write("d.nnds", SerializeDataset(Make(4)));
  Dataset copy;
  {
    absl::StatusOr<Dataset> mapped = MapDatasetFile(path, true);
    ASSERT_TRUE(mapped.ok());
    copy = *mapped;
  }
  fs::remove(path);  // the cache may evict a file while a child still maps it
  EXPECT_EQ(copy.image(3)[0], uint8_t(3 * 7));
  EXPECT_EQ(Subset(copy, {3}).images[0], uint8_t(3 * 7));
}

TEST_F(MappedDatasetTest, TruncatedOrCorruptFilesAreInvalidArgumentWithDeserializesTexts) {
  const std::string blob = SerializeDataset(Make(3));
  for (size_t n : {size_t{0}, size_t{3}, size_t{20}, size_t{40}, blob.size() - 1}) {
    const std::string cut = blob.substr(0, n);
    absl::StatusOr<Dataset> mapped = MapDatasetFile(Write("cut.nnds", cut), false);
    EXPECT_EQ(mapped.status().code(), absl::StatusCode::kInvalidArgument) << "length " << n;
    EXPECT_EQ(mapped.status().message(), DeserializeDataset(cut).status().message());
  }
  std::string bad = blob;
  bad[0] = 'X';
  EXPECT_THAT(std::string(MapDatasetFile(Write("magic.nnds", bad), false).status().message()),
              HasSubstr("bad magic"));
  bad = blob;
  bad[16] = 2;  // channels 2: found without the checksum
  EXPECT_THAT(std::string(MapDatasetFile(Write("shape.nnds", bad), false).status().message()),
              HasSubstr("bad image size"));
  bad = blob;
  bad[32 + 21] = 3;  // the label of image 0 (after "cat", "dog", "emu")
  EXPECT_THAT(std::string(MapDatasetFile(Write("label.nnds", bad), false).status().message()),
              HasSubstr("label 3 of image 0"));
}

TEST_F(MappedDatasetTest, VerifyingTheChecksumCatchesAFlippedPixel) {
  std::string blob = SerializeDataset(Make(3));
  blob[blob.size() - 10] ^= 0x01;  // a pixel byte
  const std::string path = Write("flip.nnds", blob);
  absl::StatusOr<Dataset> verified = MapDatasetFile(path, true);
  EXPECT_EQ(verified.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(verified.status().message()), HasSubstr("checksum mismatch"));
  EXPECT_TRUE(MapDatasetFile(path, false).ok());  // trusted bytes are not re-read
}

TEST_F(MappedDatasetTest, AMissingFileIsNotFound) {
  EXPECT_EQ(MapDatasetFile((dir_ / "absent.nnds").string(), false).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(MapDatasetFile("", false).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace nanonas
