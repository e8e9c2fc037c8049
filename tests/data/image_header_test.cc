#include "common/data/image_header.h"

#include <vector>

#include "gtest/gtest.h"
#include "opencv2/core.hpp"
#include "opencv2/imgcodecs.hpp"

namespace nanonas {
namespace {

std::vector<uint8_t> Encode(const std::string& ext, int w, int h, int type = CV_8UC3) {
  cv::Mat img(h, w, type, cv::Scalar(10, 20, 30));
  std::vector<uint8_t> buf;
  EXPECT_TRUE(cv::imencode(ext, img, buf));
  return buf;
}

TEST(ImageHeaderTest, ReadsSizeOfEachFormat) {
  for (const char* ext : {".png", ".jpg", ".bmp"}) {
    SCOPED_TRACE(ext);
    std::vector<uint8_t> buf = Encode(ext, 37, 21);
    absl::StatusOr<ImageHeader> h = ReadImageHeader(buf.data(), buf.size());
    ASSERT_TRUE(h.ok()) << h.status();
    EXPECT_EQ(h->width, 37);
    EXPECT_EQ(h->height, 21);
  }
  std::vector<uint8_t> png = Encode(".png", 5, 6);
  EXPECT_EQ(ReadImageHeader(png.data(), png.size())->format, ImageFormat::kPng);
  std::vector<uint8_t> jpg = Encode(".jpg", 5, 6, CV_8UC1);
  EXPECT_EQ(ReadImageHeader(jpg.data(), jpg.size())->format, ImageFormat::kJpeg);
}

TEST(ImageHeaderTest, RejectsUnknownSignatureAndEmptyInput) {
  const uint8_t text[] = "hello, world";
  absl::StatusOr<ImageHeader> h = ReadImageHeader(text, sizeof(text));
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("unknown signature"), std::string::npos);
  EXPECT_EQ(ReadImageHeader(text, 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ImageHeaderTest, RejectsHeadersCutShort) {
  for (const char* ext : {".png", ".jpg", ".bmp"}) {
    SCOPED_TRACE(ext);
    std::vector<uint8_t> buf = Encode(ext, 8, 8);
    EXPECT_FALSE(ReadImageHeader(buf.data(), 12).ok());
  }
}

TEST(ImageHeaderTest, RejectsTruncatedJpeg) {
  std::vector<uint8_t> buf = Encode(".jpg", 64, 64);
  ASSERT_TRUE(ReadImageHeader(buf.data(), buf.size()).ok());
  absl::StatusOr<ImageHeader> h = ReadImageHeader(buf.data(), buf.size() - 40);
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("truncated"), std::string::npos) << h.status();
}

TEST(ImageHeaderTest, ReadsHugeDeclaredSizeWithoutPixels) {
  // A PNG header claiming 100000 x 70000 pixels with no image data behind it.
  std::vector<uint8_t> buf = Encode(".png", 1, 1);
  auto put = [&](size_t at, uint32_t v) {
    buf[at] = v >> 24, buf[at + 1] = v >> 16, buf[at + 2] = v >> 8, buf[at + 3] = v;
  };
  put(16, 100000);
  put(20, 70000);
  absl::StatusOr<ImageHeader> h = ReadImageHeader(buf.data(), 33);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->width * h->height, int64_t{7'000'000'000});
}

TEST(ImageHeaderTest, BmpTopDownHeightIsPositive) {
  std::vector<uint8_t> buf = Encode(".bmp", 9, 7);
  const int32_t neg = -7;
  std::memcpy(&buf[22], &neg, 4);  // little-endian host
  absl::StatusOr<ImageHeader> h = ReadImageHeader(buf.data(), buf.size());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->height, 7);
}

}  // namespace
}  // namespace nanonas
