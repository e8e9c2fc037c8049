// PackImageFolder, PackDatasetFile and InspectDatasetFile: streamed files equal to the in-memory
// SerializeDataset, in bounded memory, with errors naming the file and nothing left behind.
#include "common/data/pack.h"

#include <filesystem>
#include <fstream>
#include <random>

#include "common/data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

namespace nanonas {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class PackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / (std::string("nanonas_pack_") + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "root");
    fs::create_directories(dir_ / "out");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path root() const { return dir_ / "root"; }
  std::string out() const { return (dir_ / "out" / "packed.nnds").string(); }

  // Writes `per_class` noise images of varying sizes into each class folder; the odd ones gray.
  void WriteImages(const std::vector<std::string>& classes, int per_class) {
    cv::RNG rng(7);
    for (const std::string& c : classes) {
      fs::create_directories(root() / c);
      for (int i = 0; i < per_class; ++i) {
        const int h = 9 + (i % 4);
        const int w = 7 + (i % 5);
        cv::Mat img(h, w, i % 2 == 1 ? CV_8UC1 : CV_8UC3);
        rng.fill(img, cv::RNG::UNIFORM, 0, 256);
        const std::string name = "img_" + std::to_string(1000 + i) + (i % 3 == 0 ? ".bmp" : ".png");
        ASSERT_TRUE(cv::imwrite((root() / c / name).string(), img));
      }
    }
  }
  static std::string ReadBytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Every file left in the output folder.
  std::vector<std::string> OutFiles() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_ / "out")) {
      names.push_back(e.path().filename().string());
    }
    return names;
  }
  static FolderOptions Options(InputShape size, int threads = 1) {
    FolderOptions o;
    o.size = size;
    o.threads = threads;
    return o;
  }

  fs::path dir_;
};

TEST_F(PackTest, FolderPackEqualsTheSerializedInMemoryDatasetForAnyThreadsAndChunk) {
  WriteImages({"cat", "dog"}, 7);
  for (const InputShape size : {InputShape{8, 8, 3}, InputShape{6, 5, 1}}) {
    const absl::StatusOr<Dataset> loaded = LoadImageFolder(root().string(), Options(size));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    const std::string expected = SerializeDataset(*loaded);
    for (const int threads : {1, 3}) {
      for (const int64_t chunk_images : {int64_t{4096}, int64_t{4}}) {
        SCOPED_TRACE(FormatInputShape(size) + " threads " + std::to_string(threads) + " chunk " +
                     std::to_string(chunk_images));
        PackChunking chunking;
        chunking.max_images = chunk_images;
        absl::StatusOr<PackedDataset> packed = PackImageFolder(
            root().string(), Options(size, threads), out(), nullptr, nullptr, chunking);
        ASSERT_TRUE(packed.ok()) << packed.status();
        EXPECT_TRUE(ReadBytes(out()) == expected) << "the file differs from SerializeDataset";
        EXPECT_EQ(packed->content_hex, ContentHash(*loaded));
        EXPECT_EQ(packed->shape, size);
        EXPECT_EQ(packed->num_images, 14);
        EXPECT_EQ(packed->file_bytes, static_cast<int64_t>(expected.size()));
        EXPECT_EQ(packed->pixel_bytes, static_cast<int64_t>(loaded->images.size()));
        EXPECT_THAT(packed->class_names, ElementsAre("cat", "dog"));
        EXPECT_THAT(OutFiles(), ElementsAre("packed.nnds"));
      }
    }
  }
}

TEST_F(PackTest, ProgressRisesChunkByChunkToTheTotal) {
  WriteImages({"a", "b"}, 7);
  PackChunking chunking;
  chunking.max_images = 3;
  std::vector<int64_t> done;
  absl::StatusOr<PackedDataset> packed = PackImageFolder(
      root().string(), Options({4, 4, 3}, 2), out(),
      [&](const PackProgress& p) {
        EXPECT_EQ(p.images_total, 14);
        done.push_back(p.images_done);
      },
      nullptr, chunking);
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_THAT(done, ElementsAre(3, 6, 9, 12, 14));
}

TEST_F(PackTest, HoldsOneChunkOfPixelsNotTheWholeDataset) {
  WriteImages({"a", "b"}, 20);
  const InputShape size{16, 16, 3};
  const int64_t image_bytes = 16 * 16 * 3;
  PackChunking chunking;
  chunking.max_bytes = 5 * image_bytes + 100;  // 5 images per chunk
  absl::StatusOr<PackedDataset> packed =
      PackImageFolder(root().string(), Options(size, 2), out(), nullptr, nullptr, chunking);
  ASSERT_TRUE(packed.ok()) << packed.status();
  EXPECT_EQ(packed->peak_buffer_bytes, 5 * image_bytes);
  EXPECT_LE(packed->peak_buffer_bytes, chunking.max_bytes);
  EXPECT_LT(chunking.max_bytes, packed->num_images * image_bytes);
  const absl::StatusOr<Dataset> loaded = LoadImageFolder(root().string(), Options(size));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(ReadBytes(out()) == SerializeDataset(*loaded));
}

TEST_F(PackTest, CorruptLastImageIsNamedLikeLoadImageFolderAndNoFileIsLeft) {
  WriteImages({"cat", "dog"}, 6);
  std::ofstream(root() / "dog" / "zz_last.png", std::ios::binary) << "not a png";  // last
  const FolderOptions options = Options({8, 8, 3}, 3);
  const absl::StatusOr<Dataset> loaded = LoadImageFolder(root().string(), options);
  ASSERT_FALSE(loaded.ok());
  PackChunking chunking;
  chunking.max_images = 4;
  absl::StatusOr<PackedDataset> packed =
      PackImageFolder(root().string(), options, out(), nullptr, nullptr, chunking);
  EXPECT_EQ(packed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(packed.status().message()), HasSubstr("dog/zz_last.png"));
  EXPECT_EQ(packed.status(), loaded.status());
  EXPECT_THAT(OutFiles(), IsEmpty());
}

TEST_F(PackTest, FirstFailingFileInLoadOrderIsReported) {
  WriteImages({"cat", "dog"}, 6);
  std::ofstream(root() / "cat" / "img_1004.png", std::ios::binary) << "broken";  // replaces one
  std::ofstream(root() / "dog" / "img_1001.png", std::ios::binary) << "broken too";
  PackChunking chunking;
  chunking.max_images = 100;
  for (int threads : {1, 4}) {
    absl::StatusOr<PackedDataset> packed = PackImageFolder(
        root().string(), Options({8, 8, 3}, threads), out(), nullptr, nullptr, chunking);
    EXPECT_THAT(std::string(packed.status().message()), HasSubstr("cat/img_1004.png"));
  }
}

TEST_F(PackTest, CancelledBetweenChunksLeavesNoFile) {
  WriteImages({"a", "b"}, 5);
  PackChunking chunking;
  chunking.max_images = 2;
  int chunks = 0;
  bool cancel = false;
  absl::StatusOr<PackedDataset> packed = PackImageFolder(
      root().string(), Options({4, 4, 3}), out(),
      [&](const PackProgress&) {
        ++chunks;
        cancel = true;
      },
      [&] { return cancel; }, chunking);
  EXPECT_EQ(packed.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(chunks, 1);
  EXPECT_THAT(OutFiles(), IsEmpty());
}

TEST_F(PackTest, ErrorsLeaveAnExistingOutputUntouched) {
  std::ofstream(out(), std::ios::binary) << "previous";
  WriteImages({"only"}, 2);
  absl::StatusOr<PackedDataset> packed =
      PackImageFolder(root().string(), Options({4, 4, 3}), out());
  EXPECT_EQ(packed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(packed.status().message()), HasSubstr("only one class"));
  EXPECT_EQ(ReadBytes(out()), "previous");
  EXPECT_THAT(OutFiles(), ElementsAre("packed.nnds"));
}

Dataset RandomDataset(InputShape shape, int64_t n, int classes) {
  Dataset d;
  d.shape = shape;
  for (int c = 0; c < classes; ++c) d.class_names.push_back("class " + std::to_string(c));
  std::mt19937 rng(11);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(rng() % classes));
  d.images.resize(static_cast<size_t>(n * d.image_bytes()));
  for (uint8_t& v : d.images) v = static_cast<uint8_t>(rng());
  return d;
}

TEST_F(PackTest, DatasetFilePackEqualsResizeThenSerialize) {
  const Dataset in = RandomDataset({12, 10, 3}, 11, 3);
  const std::string in_path = (dir_ / "in.nnds").string();
  std::ofstream(in_path, std::ios::binary) << SerializeDataset(in);
  for (const InputShape size :
       {InputShape{8, 8, 1}, InputShape{12, 10, 3}, InputShape{20, 16, 3}}) {
    SCOPED_TRACE(FormatInputShape(size));
    const absl::StatusOr<Dataset> resized = ResizeDataset(in, size);
    ASSERT_TRUE(resized.ok()) << resized.status();
    PackChunking chunking;
    chunking.max_images = 4;
    std::vector<int64_t> done;
    absl::StatusOr<PackedDataset> packed = PackDatasetFile(
        in_path, size, out(), [&](const PackProgress& p) { done.push_back(p.images_done); },
        nullptr, chunking);
    ASSERT_TRUE(packed.ok()) << packed.status();
    EXPECT_TRUE(ReadBytes(out()) == SerializeDataset(*resized));
    EXPECT_EQ(packed->content_hex, ContentHash(*resized));
    EXPECT_EQ(packed->num_images, 11);
    EXPECT_EQ(packed->pixel_bytes, static_cast<int64_t>(resized->images.size()));
    EXPECT_THAT(done, ElementsAre(4, 8, 11));
    EXPECT_LE(packed->peak_buffer_bytes, 4 * (in.image_bytes() + resized->image_bytes()));
  }
}

TEST_F(PackTest, CorruptDatasetFileIsRejectedAndNoFileIsLeft) {
  const Dataset in = RandomDataset({6, 6, 1}, 9, 2);
  std::string bytes = SerializeDataset(in);
  bytes[bytes.size() - 10] ^= 0x40;  // a pixel: only the checksum can tell
  const std::string in_path = (dir_ / "in.nnds").string();
  std::ofstream(in_path, std::ios::binary) << bytes;
  PackChunking chunking;
  chunking.max_images = 2;
  absl::StatusOr<PackedDataset> packed =
      PackDatasetFile(in_path, {4, 4, 1}, out(), nullptr, nullptr, chunking);
  EXPECT_EQ(packed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(packed.status().message()), HasSubstr("checksum mismatch"));
  EXPECT_THAT(OutFiles(), IsEmpty());
  std::ofstream(in_path, std::ios::binary) << bytes.substr(0, 40);
  EXPECT_EQ(PackDatasetFile(in_path, {4, 4, 1}, out()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(OutFiles(), IsEmpty());
}

TEST_F(PackTest, InspectValidatesAndDescribesADatasetFileInChunks) {
  const Dataset in = RandomDataset({7, 5, 3}, 13, 4);
  const std::string bytes = SerializeDataset(in);
  const std::string path = (dir_ / "in.nnds").string();
  std::ofstream(path, std::ios::binary) << bytes;
  PackChunking chunking;
  chunking.max_images = 3;
  absl::StatusOr<PackedDataset> info = InspectDatasetFile(path, chunking);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->content_hex, ContentHash(in));
  EXPECT_EQ(info->shape, in.shape);
  EXPECT_EQ(info->num_images, 13);
  EXPECT_EQ(info->file_bytes, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(info->class_names, in.class_names);
  EXPECT_EQ(info->peak_buffer_bytes, 3 * in.image_bytes());
  // Every truncation and a bad label are refused with DeserializeDataset's code.
  for (size_t cut : {size_t{3}, size_t{30}, size_t{60}, bytes.size() - 1}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes.substr(0, cut);
    EXPECT_EQ(InspectDatasetFile(path).status().code(), absl::StatusCode::kInvalidArgument) << cut;
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes + "x";
  EXPECT_EQ(InspectDatasetFile(path).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InspectDatasetFile((dir_ / "missing.nnds").string()).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace nanonas
