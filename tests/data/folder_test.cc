// LoadImageFolder and ResizeDataset on small image folders the tests write themselves.
#include <filesystem>
#include <fstream>

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

class FolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) / (std::string("nanonas_folder_") + info->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Writes a solid BGR image (OpenCV order) to root/<rel>.
  fs::path WriteSolid(const std::string& rel, cv::Scalar bgr, int w = 8, int h = 6) {
    return Write(rel, cv::Mat(h, w, CV_8UC3, bgr));
  }
  fs::path Write(const std::string& rel, const cv::Mat& img) {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    EXPECT_TRUE(cv::imwrite(p.string(), img)) << p;
    return p;
  }
  fs::path WriteBytes(const std::string& rel, const std::string& bytes) {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  static std::string ReadBytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  FolderOptions Options(int h = 4, int w = 4, int c = 3) {
    FolderOptions o;
    o.size = {h, w, c};
    return o;
  }

  fs::path root_;
};

TEST_F(FolderTest, LabelsFollowSortedClassNamesAndFilesAreSorted) {
  WriteSolid("zebra/b.png", cv::Scalar(0, 0, 30));
  WriteSolid("zebra/a.png", cv::Scalar(0, 0, 20));
  WriteSolid("ant/x.png", cv::Scalar(0, 0, 10));
  WriteSolid("mouse/1.png", cv::Scalar(0, 0, 40));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->class_names, ElementsAre("ant", "mouse", "zebra"));
  EXPECT_THAT(ds->labels, ElementsAre(0, 1, 2, 2));
  ASSERT_EQ(ds->size(), 4);
  EXPECT_EQ(ds->images.size(), 4u * 4 * 4 * 3);
  // The red channel (first in RGB) identifies each file: ant/x, mouse/1, zebra/a, zebra/b.
  EXPECT_EQ(ds->image(0)[0], 10);
  EXPECT_EQ(ds->image(1)[0], 40);
  EXPECT_EQ(ds->image(2)[0], 20);
  EXPECT_EQ(ds->image(3)[0], 30);
}

TEST_F(FolderTest, PixelsAreRgbOrder) {
  WriteSolid("a/red.png", cv::Scalar(0, 0, 255));   // BGR
  WriteSolid("b/blue.png", cv::Scalar(255, 0, 0));  // BGR
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status();
  for (int64_t px = 0; px < 16; ++px) {
    EXPECT_EQ(ds->image(0)[px * 3 + 0], 255);
    EXPECT_EQ(ds->image(0)[px * 3 + 1], 0);
    EXPECT_EQ(ds->image(0)[px * 3 + 2], 0);
    EXPECT_EQ(ds->image(1)[px * 3 + 0], 0);
    EXPECT_EQ(ds->image(1)[px * 3 + 2], 255);
  }
}

TEST_F(FolderTest, ResizeIsBilinearWithHalfPixelCentres) {
  // Columns 0, 100, 200, 50 shrunk to 2 columns: each output averages its two source columns.
  cv::Mat img(4, 4, CV_8UC1);
  for (int y = 0; y < 4; ++y) {
    img.at<uint8_t>(y, 0) = 0;
    img.at<uint8_t>(y, 1) = 100;
    img.at<uint8_t>(y, 2) = 200;
    img.at<uint8_t>(y, 3) = 50;
  }
  Write("a/cols.png", img);
  WriteSolid("b/other.png", cv::Scalar(1, 1, 1));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options(2, 2, 1));
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->shape, (InputShape{2, 2, 1}));
  EXPECT_THAT(std::vector<uint8_t>(ds->image(0), ds->image(0) + 4), ElementsAre(50, 125, 50, 125));
}

TEST_F(FolderTest, GrayscaleModeConvertsColourWithLumaWeights) {
  WriteSolid("a/colour.png", cv::Scalar(30, 60, 200));  // B=30 G=60 R=200
  Write("b/gray.png", cv::Mat(6, 8, CV_8UC1, cv::Scalar(77)));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options(4, 4, 1));
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->images.size(), 2u * 16);
  // 0.299 * 200 + 0.587 * 60 + 0.114 * 30 = 98.4
  EXPECT_EQ(ds->image(0)[0], 98);
  EXPECT_EQ(ds->image(1)[0], 77);
}

TEST_F(FolderTest, GrayscaleFilesInRgbSetAreReplicated) {
  Write("a/gray.png", cv::Mat(6, 8, CV_8UC1, cv::Scalar(77)));
  Write("a/gray.jpg", cv::Mat(6, 8, CV_8UC1, cv::Scalar(140)));
  WriteSolid("b/colour.png", cv::Scalar(1, 2, 3));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_EQ(ds->shape.channels, 3);
  // Sorted: gray.jpg, gray.png.
  for (int ch = 0; ch < 3; ++ch) {
    EXPECT_NEAR(ds->image(0)[ch], 140, 2);
    EXPECT_EQ(ds->image(1)[ch], 77);
  }
}

TEST_F(FolderTest, AcceptsExtensionsCaseInsensitivelyAndIgnoresOtherFiles) {
  WriteSolid("a/1.JPG", cv::Scalar(0, 0, 100));
  WriteSolid("a/2.Jpeg", cv::Scalar(0, 0, 100));
  WriteSolid("a/3.PNG", cv::Scalar(0, 0, 100));
  WriteSolid("b/4.bmp", cv::Scalar(0, 0, 200));
  WriteSolid("b/.hidden.png", cv::Scalar(0, 0, 200));
  WriteBytes("b/notes.txt", "not an image");
  WriteBytes("b/anim.gif", "GIF89a");
  WriteSolid(".cache/5.png", cv::Scalar(0, 0, 1));  // hidden folder: not a class
  WriteSolid("loose.png", cv::Scalar(0, 0, 1));     // files at the root are not a class
  fs::create_directories(root_ / "b" / "nested");
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->class_names, ElementsAre("a", "b"));
  EXPECT_THAT(ds->labels, ElementsAre(0, 0, 0, 1));
  EXPECT_NEAR(ds->image(0)[0], 100, 3);  // JPEG is lossy
  EXPECT_EQ(ds->image(3)[0], 200);
}

TEST_F(FolderTest, CorruptImageIsNamed) {
  WriteSolid("a/good.png", cv::Scalar(1, 2, 3));
  const fs::path bad = WriteBytes("b/broken.png", "this is not a png at all");
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(bad.string()));
}

TEST_F(FolderTest, TruncatedPngIsNamed) {
  WriteSolid("a/good.png", cv::Scalar(1, 2, 3));
  cv::Mat noise(64, 64, CV_8UC3);
  cv::randu(noise, 0, 255);
  const fs::path p = Write("b/cut.png", noise);
  const std::string bytes = ReadBytes(p);
  WriteBytes("b/cut.png", bytes.substr(0, bytes.size() / 2));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(p.string()));
}

TEST_F(FolderTest, TruncatedJpegIsNamed) {
  WriteSolid("a/good.png", cv::Scalar(1, 2, 3));
  cv::Mat noise(64, 64, CV_8UC3);
  cv::randu(noise, 0, 255);
  const fs::path p = Write("b/cut.jpg", noise);
  const std::string bytes = ReadBytes(p);
  WriteBytes("b/cut.jpg", bytes.substr(0, bytes.size() * 2 / 3));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(p.string()));
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("truncated"));
}

TEST_F(FolderTest, EmptyClassFolderIsNamed) {
  WriteSolid("a/1.png", cv::Scalar(1, 2, 3));
  WriteBytes("b/readme.txt", "no images here");
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("empty class folder"));
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr((root_ / "b").string()));
}

TEST_F(FolderTest, OneClassOnlyIsRejected) {
  WriteSolid("only/1.png", cv::Scalar(1, 2, 3));
  WriteSolid("only/2.png", cv::Scalar(1, 2, 3));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("only one class ('only')"));
}

TEST_F(FolderTest, NoImagesAtAllIsRejected) {
  fs::create_directories(root_ / "a");
  fs::create_directories(root_ / "b");
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("has no images"));
}

TEST_F(FolderTest, ImagesWithoutClassFoldersAreRejected) {
  WriteSolid("1.png", cv::Scalar(1, 2, 3));
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("no class folders"));
}

TEST_F(FolderTest, MissingRootIsNotFound) {
  const std::string missing = (root_ / "does-not-exist").string();
  absl::StatusOr<Dataset> ds = LoadImageFolder(missing, Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(missing));
  const fs::path file = WriteBytes("file", "x");
  EXPECT_EQ(LoadImageFolder(file.string(), Options()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FolderTest, HugeImageIsRejectedBeforeDecoding) {
  // A real 300x300 PNG over a 10,000-pixel limit.
  WriteSolid("a/1.png", cv::Scalar(1, 2, 3));
  const fs::path big = WriteSolid("b/big.png", cv::Scalar(1, 2, 3), 300, 300);
  FolderOptions o = Options();
  o.max_image_pixels = 10'000;
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), o);
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(big.string()));
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("300x300"));

  // A decompression bomb: a PNG header declaring 100000 x 70000 pixels (the default limit is
  // 64 Mi pixels). Decoding it would need 21 GB; it is refused from the header alone.
  std::string bytes = ReadBytes(root_ / "a/1.png");
  auto put = [&](size_t at, uint32_t v) {
    bytes[at] = char(v >> 24), bytes[at + 1] = char(v >> 16), bytes[at + 2] = char(v >> 8),
    bytes[at + 3] = char(v);
  };
  put(16, 100000);
  put(20, 70000);
  fs::remove(big);
  const fs::path bomb = WriteBytes("b/bomb.png", bytes);
  ds = LoadImageFolder(root_.string(), Options());
  EXPECT_EQ(ds.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr(bomb.string()));
  EXPECT_THAT(std::string(ds.status().message()), HasSubstr("too large to decode"));
}

TEST_F(FolderTest, TooManyImagesAndBadSizesAreRejected) {
  WriteSolid("a/1.png", cv::Scalar(1, 2, 3));
  WriteSolid("b/1.png", cv::Scalar(1, 2, 3));
  WriteSolid("b/2.png", cv::Scalar(1, 2, 3));
  FolderOptions o = Options();
  o.max_images = 2;
  EXPECT_THAT(std::string(LoadImageFolder(root_.string(), o).status().message()),
              HasSubstr("more than the limit of 2"));
  EXPECT_EQ(LoadImageFolder(root_.string(), Options(4, 4, 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadImageFolder(root_.string(), Options(0, 4, 3)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FolderTest, ThreadsGiveTheSameDatasetAndTheFirstError) {
  cv::RNG rng(5);
  for (int i = 0; i < 24; ++i) {
    cv::Mat img(20 + i, 30, CV_8UC3);
    rng.fill(img, cv::RNG::UNIFORM, 0, 255);
    Write(std::string(i % 3 == 0 ? "a/" : "b/") + std::to_string(100 + i) + ".png", img);
  }
  FolderOptions one = Options(8, 8, 3);
  FolderOptions four = one;
  four.threads = 4;
  absl::StatusOr<Dataset> a = LoadImageFolder(root_.string(), one);
  absl::StatusOr<Dataset> b = LoadImageFolder(root_.string(), four);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->images, b->images);
  EXPECT_EQ(a->labels, b->labels);
  EXPECT_EQ(ContentHash(*a), ContentHash(*b));
  // Two corrupt files: the error names the first in load order (class a, then b).
  WriteBytes("b/150.png", "junk");
  const fs::path first = WriteBytes("a/150.png", "junk");
  for (int t : {1, 4}) {
    FolderOptions o = one;
    o.threads = t;
    absl::StatusOr<Dataset> d = LoadImageFolder(root_.string(), o);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(first.string())) << t;
  }
  one.threads = 0;
  EXPECT_EQ(LoadImageFolder(root_.string(), one).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(FolderTest, GivenClassNamesFixTheLabelsOfATestFolder) {
  WriteSolid("cat/1.png", cv::Scalar(0, 0, 10));
  WriteSolid("dog/1.png", cv::Scalar(0, 0, 20));
  FolderOptions o = Options();
  o.class_names = {"dog", "cat"};
  absl::StatusOr<Dataset> ds = LoadImageFolder(root_.string(), o);
  ASSERT_TRUE(ds.ok()) << ds.status();
  EXPECT_THAT(ds->class_names, ElementsAre("dog", "cat"));
  EXPECT_THAT(ds->labels, ElementsAre(0, 1));
  EXPECT_EQ(ds->image(0)[0], 20);
  o.class_names = {"cat", "dog", "emu"};
  EXPECT_THAT(std::string(LoadImageFolder(root_.string(), o).status().message()),
              HasSubstr("missing emu"));
  o.class_names = {"cat"};
  EXPECT_THAT(std::string(LoadImageFolder(root_.string(), o).status().message()),
              HasSubstr("unexpected dog"));
}

TEST(ResizeDatasetTest, ConvertsSizeAndChannels) {
  Dataset in;
  in.shape = {2, 2, 3};
  in.class_names = {"a", "b"};
  in.labels = {0, 1};
  // Image 0: every pixel RGB (200, 60, 30); image 1: every pixel (10, 10, 10).
  for (int i = 0; i < 4; ++i) in.images.insert(in.images.end(), {200, 60, 30});
  for (int i = 0; i < 4; ++i) in.images.insert(in.images.end(), {10, 10, 10});
  absl::StatusOr<Dataset> gray = ResizeDataset(in, {3, 3, 1});
  ASSERT_TRUE(gray.ok()) << gray.status();
  EXPECT_EQ(gray->images.size(), 18u);
  EXPECT_EQ(gray->image(0)[4], 98);  // input is RGB: 0.299*200 + 0.587*60 + 0.114*30
  EXPECT_EQ(gray->image(1)[8], 10);
  EXPECT_EQ(gray->labels, in.labels);
  absl::StatusOr<Dataset> rgb = ResizeDataset(*gray, {1, 1, 3});
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_THAT(std::vector<uint8_t>(rgb->image(0), rgb->image(0) + 3), ElementsAre(98, 98, 98));
  EXPECT_EQ(ResizeDataset(in, {0, 3, 3}).status().code(), absl::StatusCode::kInvalidArgument);
  in.images.pop_back();
  EXPECT_EQ(ResizeDataset(in, {3, 3, 3}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nanonas
