// The pipe protocol between the worker and its evaluation child process.
//
// Parent -> child (the child's stdin): one frame holding a nanonas.v1.EvaluateRequest.
// Child -> parent (the child's stdout): frames holding nanonas.v1.EvaluateEvent, the last one a
// result. A frame is a 4-byte little-endian length followed by that many bytes of a serialized
// protobuf message. Frames are capped at kMaxFrameBytes.
#ifndef NANONAS_WORKER_SERVICE_CHILD_PROTOCOL_H_
#define NANONAS_WORKER_SERVICE_CHILD_PROTOCOL_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace nanonas {

inline constexpr uint32_t kMaxFrameBytes = 256u << 20;  // weights of a final training fit easily

// Writes one frame to `fd` (blocking, retries on EINTR / short writes).
absl::Status WriteFrame(int fd, const google::protobuf::MessageLite& message);

// Reads one whole frame from a blocking `fd` into `message`. Returns false at a clean EOF before
// any byte of a frame; DATA_LOSS on a truncated or unparsable frame.
absl::StatusOr<bool> ReadFrame(int fd, google::protobuf::MessageLite* message);

// Incremental decoder for a non-blocking reader: Append() what read() returned, then take whole
// frames with Next(). Not thread-safe.
// This process's own peak resident memory (VmHWM of /proc/self/status), 0 if unknown. The child
// reports it with its result: wait4's ru_maxrss cannot be used, because a posix_spawn child
// (vfork semantics) inherits the parent's high-water mark through exec.
int64_t OwnPeakRssBytes();
// This process's resident memory now (VmRSS), 0 if unknown.
int64_t OwnRssBytes();
// This process's anonymous resident memory now (RssAnon: heap, stacks, private pages; not
// file-backed pages such as a memory-mapped dataset's), 0 if unknown.
int64_t OwnRssAnonBytes();

class FrameDecoder {
 public:
  void Append(const char* data, size_t size) { buffer_.append(data, size); }
  // True and fills `payload` when a whole frame is buffered; DATA_LOSS when the length is absurd.
  absl::StatusOr<bool> Next(std::string* payload);
  // Bytes buffered that do not yet form a frame (non-zero at EOF means a truncated frame).
  size_t pending_bytes() const { return buffer_.size(); }

 private:
  std::string buffer_;
};

}  // namespace nanonas

#endif  // NANONAS_WORKER_SERVICE_CHILD_PROTOCOL_H_
