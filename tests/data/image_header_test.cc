#include "common/data/image_header.h"

#include <memory>
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

TEST(ImageHeaderTest, RejectsPngSizesBeyondTheSpecification) {
  std::vector<uint8_t> buf = Encode(".png", 1, 1);
  buf[16] = buf[17] = buf[18] = buf[19] = 0xFF;  // width 2^32 - 1
  buf[20] = buf[21] = buf[22] = buf[23] = 0xFF;
  absl::StatusOr<ImageHeader> h = ReadImageHeader(buf.data(), buf.size());
  EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(h.status().message().find("impossible size"), std::string::npos) << h.status();
}

TEST(ImageHeaderTest, EveryJpegPrefixIsRejectedAndMutationsNeverCrash) {
  std::vector<uint8_t> jpg = Encode(".jpg", 40, 30);
  for (size_t n = 0; n < jpg.size() - 1; ++n) {
    EXPECT_FALSE(ReadImageHeader(jpg.data(), n).ok()) << "prefix " << n;
  }
  // Random byte flips in each format: the reader returns (ok or an error), never reads past end.
  cv::RNG rng(11);
  for (const char* ext : {".png", ".jpg", ".bmp"}) {
    const std::vector<uint8_t> good = Encode(ext, 23, 17);
    for (int trial = 0; trial < 2000; ++trial) {
      std::vector<uint8_t> bad = good;
      for (int f = 0; f < 3; ++f) {
        const int at = rng.uniform(0, static_cast<int>(bad.size()));
        bad[at] = static_cast<uint8_t>(rng.uniform(0, 256));
      }
      const size_t n = rng.uniform(0, static_cast<int>(bad.size()) + 1);
      // Exact-size heap copy so that an overread would touch memory outside the allocation.
      std::unique_ptr<uint8_t[]> copy(new uint8_t[n + 1]);
      std::copy(bad.begin(), bad.begin() + n, copy.get());
      absl::StatusOr<ImageHeader> h = ReadImageHeader(copy.get(), n);
      if (h.ok()) {
        EXPECT_GT(h->width, 0);
        EXPECT_GT(h->height, 0);
      }
    }
  }
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
