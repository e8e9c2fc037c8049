#include "common/data/image_header.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace nanonas {
namespace {

uint32_t Be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint32_t Le16(const uint8_t* p) { return uint32_t{p[0]} | (uint32_t{p[1]} << 8); }
uint32_t Le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

absl::Status Short(const char* what) {
  return absl::InvalidArgumentError(absl::StrCat(what, " header is cut short"));
}

absl::StatusOr<ImageHeader> ReadPng(const uint8_t* d, size_t n) {
  // Signature (8) | length (4) | "IHDR" (4) | width (4, BE) | height (4, BE) | ...
  if (n < 24) return Short("PNG");
  if (std::memcmp(d + 12, "IHDR", 4) != 0) {
    return absl::InvalidArgumentError("PNG does not start with an IHDR chunk");
  }
  ImageHeader h{ImageFormat::kPng, Be32(d + 16), Be32(d + 20)};
  if (h.width > 0x7fffffff || h.height > 0x7fffffff) {  // the PNG specification's limit
    return absl::InvalidArgumentError(
        absl::StrCat("PNG declares an impossible size ", h.width, "x", h.height));
  }
  return h;
}

absl::StatusOr<ImageHeader> ReadBmp(const uint8_t* d, size_t n) {
  // "BM" | file size (4) | reserved (4) | pixel offset (4) | DIB header size (4) | ...
  if (n < 26) return Short("BMP");
  const uint32_t dib = Le32(d + 14);
  ImageHeader h{ImageFormat::kBmp, 0, 0};
  if (dib == 12) {  // BITMAPCOREHEADER: 16-bit unsigned width and height
    h.width = Le16(d + 18);
    h.height = Le16(d + 20);
  } else if (dib >= 40) {  // BITMAPINFOHEADER and later: signed 32-bit, negative = top-down
    h.width = static_cast<int32_t>(Le32(d + 18));
    h.height = static_cast<int32_t>(Le32(d + 22));
    if (h.width < 0) return absl::InvalidArgumentError("BMP has a negative width");
    if (h.height < 0) h.height = -h.height;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("BMP has an unknown DIB header size ", dib));
  }
  return h;
}

bool IsJpegSof(uint8_t m) {
  // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
  return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

absl::StatusOr<ImageHeader> ReadJpeg(const uint8_t* d, size_t n) {
  ImageHeader h{ImageFormat::kJpeg, 0, 0};
  bool have_sof = false;
  size_t i = 2;  // after SOI (FF D8)
  while (true) {
    // Markers may be preceded by any number of 0xFF fill bytes.
    if (i >= n || d[i] != 0xFF) {
      return absl::InvalidArgumentError(i >= n ? "JPEG is cut short before its image data"
                                               : "JPEG has a malformed segment");
    }
    while (i < n && d[i] == 0xFF) ++i;
    if (i >= n) return Short("JPEG");
    const uint8_t marker = d[i++];
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == 0xD9) return absl::InvalidArgumentError("JPEG ends before its image data");
    if (i + 2 > n) return Short("JPEG");
    const size_t length = Be16(d + i);  // includes the two length bytes
    if (length < 2 || i + length > n) return Short("JPEG");
    if (IsJpegSof(marker) && !have_sof) {
      if (length < 8) return Short("JPEG frame");
      h.height = Be16(d + i + 3);
      h.width = Be16(d + i + 5);
      have_sof = true;
    }
    if (marker == 0xDA) {  // start of scan: entropy-coded data follows
      if (!have_sof) return absl::InvalidArgumentError("JPEG has no frame header before its scan");
      // Inside entropy-coded data 0xFF is stuffed as FF 00, so FF D9 is the real end marker.
      // Search backwards: it is nearly always the last two bytes.
      for (size_t j = n - 1; j > i + length; --j) {
        if (d[j] == 0xD9 && d[j - 1] == 0xFF) return h;
      }
      return absl::InvalidArgumentError("JPEG is truncated (no end-of-image marker)");
    }
    i += length;
  }
}

}  // namespace

const char* ImageFormatName(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kBmp:
      return "BMP";
  }
  return "?";
}

absl::StatusOr<ImageHeader> ReadImageHeader(const uint8_t* data, size_t size) {
  static const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  absl::StatusOr<ImageHeader> h;
  if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) {
    h = ReadPng(data, size);
  } else if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
    h = ReadJpeg(data, size);
  } else if (size >= 2 && data[0] == 'B' && data[1] == 'M') {
    h = ReadBmp(data, size);
  } else {
    return absl::InvalidArgumentError(
        size == 0 ? "file is empty" : "not a JPEG, PNG or BMP image (unknown signature)");
  }
  if (!h.ok()) return h;
  if (h->width <= 0 || h->height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(ImageFormatName(h->format), " has size ", h->width, "x", h->height));
  }
  return h;
}

}  // namespace nanonas
