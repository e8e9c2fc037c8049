#include "worker/service/child_protocol.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace nanonas {
namespace {

void EncodeLength(uint32_t n, char out[4]) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
}

uint32_t DecodeLength(const char in[4]) {
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i)
    n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return n;
}

absl::Status WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("pipe write failed: ", std::strerror(errno)));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Reads exactly `size` bytes; returns the count read before EOF (< size at EOF).
absl::StatusOr<size_t> ReadAll(int fd, char* data, size_t size) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::read(fd, data + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("pipe read failed: ", std::strerror(errno)));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

}  // namespace

absl::Status WriteFrame(int fd, const google::protobuf::MessageLite& message) {
  std::string payload;
  if (!message.SerializeToString(&payload)) {
    return absl::InternalError("could not serialize a child-protocol message");
  }
  if (payload.size() > kMaxFrameBytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("child-protocol frame of ", payload.size(), " bytes exceeds the limit"));
  }
  std::string frame(4, '\0');
  EncodeLength(static_cast<uint32_t>(payload.size()), frame.data());
  frame += payload;
  return WriteAll(fd, frame.data(), frame.size());
}

absl::StatusOr<bool> ReadFrame(int fd, google::protobuf::MessageLite* message) {
  char header[4];
  auto got = ReadAll(fd, header, 4);
  if (!got.ok()) return got.status();
  if (*got == 0) return false;
  if (*got < 4) return absl::DataLossError("truncated frame header on the child pipe");
  uint32_t length = DecodeLength(header);
  if (length > kMaxFrameBytes) {
    return absl::DataLossError(absl::StrCat("frame length ", length, " exceeds the limit"));
  }
  std::string payload(length, '\0');
  got = ReadAll(fd, payload.data(), length);
  if (!got.ok()) return got.status();
  if (*got < length) return absl::DataLossError("truncated frame on the child pipe");
  if (!message->ParseFromString(payload)) {
    return absl::DataLossError("unparsable frame on the child pipe");
  }
  return true;
}

namespace {
int64_t ReadStatusKib(const char* format) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  long long kib = 0;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::sscanf(line, format, &kib) == 1) break;
  }
  std::fclose(f);
  return static_cast<int64_t>(kib) * 1024;
}
}  // namespace

int64_t OwnPeakRssBytes() { return ReadStatusKib("VmHWM: %lld kB"); }
int64_t OwnRssBytes() { return ReadStatusKib("VmRSS: %lld kB"); }
int64_t OwnRssAnonBytes() { return ReadStatusKib("RssAnon: %lld kB"); }

absl::StatusOr<bool> FrameDecoder::Next(std::string* payload) {
  if (buffer_.size() < 4) return false;
  uint32_t length = DecodeLength(buffer_.data());
  if (length > kMaxFrameBytes) {
    return absl::DataLossError(absl::StrCat("frame length ", length, " exceeds the limit"));
  }
  if (buffer_.size() < 4 + static_cast<size_t>(length)) return false;
  payload->assign(buffer_, 4, length);
  buffer_.erase(0, 4 + static_cast<size_t>(length));
  return true;
}

}  // namespace nanonas
