// A job's artifact files (model.tflite, model.h, report.json, search-path.svg) on disk:
// <root>/<job id>/<name>, written atomically (temporary file + rename) so that a crash never
// leaves a half-written artifact under its final name. The job record lists them
// (Job.artifacts, with size and SHA-256); this class only holds the bytes.
#ifndef NANONAS_SERVER_COORDINATOR_ARTIFACT_STORE_H_
#define NANONAS_SERVER_COORDINATOR_ARTIFACT_STORE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/base/sha256.h"  // Sha256Hex: the artifacts' digests
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas::coordinator {

class ArtifactStore {
 public:
  explicit ArtifactStore(std::string root) : root_(std::move(root)) {}

  // Writes the file and returns its record (name, size, sha256 hex). INVALID_ARGUMENT for a name
  // that is not a plain file name; INTERNAL naming the path when the disk refuses.
  absl::StatusOr<nanonas::v1::Artifact> Write(const std::string& job_id, const std::string& name,
                                              absl::string_view bytes) const;

  // Reads `length` bytes from `offset` (fewer at the end; empty past it). NOT_FOUND when the file
  // is missing.
  absl::StatusOr<std::string> Read(const std::string& job_id, const std::string& name,
                                   int64_t offset, int64_t length) const;

  std::string PathOf(const std::string& job_id, const std::string& name) const;
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

// True for a plain file name (no '/', not "." or "..", not empty, at most 128 characters).
bool IsPlainFileName(absl::string_view name);

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_ARTIFACT_STORE_H_
