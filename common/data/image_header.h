// Reads an image's format and size from its first bytes, without decoding the pixels, so that huge
// images (decompression bombs) are rejected before a decoder allocates anything.
//
// Thread-safety: pure functions, safe to call from any thread.
#ifndef NANONAS_COMMON_DATA_IMAGE_HEADER_H_
#define NANONAS_COMMON_DATA_IMAGE_HEADER_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"

namespace nanonas {

enum class ImageFormat { kJpeg, kPng, kBmp };
const char* ImageFormatName(ImageFormat f);  // "JPEG", "PNG", "BMP"

struct ImageHeader {
  ImageFormat format;
  int64_t width = 0;
  int64_t height = 0;
};

// Recognises the format by its signature (not the file name) and reads the size:
//   PNG:  the IHDR chunk; JPEG: the first SOFn segment, and the file must hold an end-of-image
//   marker after its scan data (a truncated JPEG is rejected: libjpeg would only warn and pad it
//   with grey); BMP: the DIB header (negative heights are top-down images).
// INVALID_ARGUMENT (without a file name; the caller adds it) for an unknown signature, a header
// cut short, a zero size or a truncated JPEG.
absl::StatusOr<ImageHeader> ReadImageHeader(const uint8_t* data, size_t size);

}  // namespace nanonas

#endif  // NANONAS_COMMON_DATA_IMAGE_HEADER_H_
