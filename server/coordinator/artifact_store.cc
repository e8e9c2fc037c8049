#include "server/coordinator/artifact_store.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/sha256.h"

namespace nanonas::coordinator {

// Declared in artifact_store.h for the coordinator's callers; the digest is common/base's.
bool IsPlainFileName(absl::string_view name) {
  return !name.empty() && name.size() <= 128 && name != "." && name != ".." &&
         name.find('/') == absl::string_view::npos && name.find('\0') == absl::string_view::npos;
}

std::string ArtifactStore::PathOf(const std::string& job_id, const std::string& name) const {
  return (std::filesystem::path(root_) / job_id / name).string();
}

absl::StatusOr<nanonas::v1::Artifact> ArtifactStore::Write(const std::string& job_id,
                                                           const std::string& name,
                                                           absl::string_view bytes) const {
  if (!IsPlainFileName(job_id) || !IsPlainFileName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact '", job_id, "/", name, "' is not a plain job id / file name"));
  }
  std::error_code ec;
  const std::filesystem::path dir = std::filesystem::path(root_) / job_id;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  const std::string path = (dir / name).string();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  nanonas::v1::Artifact a;
  a.set_name(name);
  a.set_size_bytes(static_cast<int64_t>(bytes.size()));
  a.set_sha256(Sha256Hex(bytes));
  return a;
}

absl::StatusOr<std::string> ArtifactStore::Read(const std::string& job_id, const std::string& name,
                                                int64_t offset, int64_t length) const {
  if (!IsPlainFileName(job_id) || !IsPlainFileName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("artifact '", job_id, "/", name, "' is not a plain job id / file name"));
  }
  const std::string path = PathOf(job_id, name);
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("artifact file ", path, " is missing"));
  in.seekg(0, std::ios::end);
  const int64_t size = static_cast<int64_t>(in.tellg());
  if (offset >= size) return std::string();
  const int64_t n = std::min(length, size - offset);
  std::string out(static_cast<size_t>(n), '\0');
  in.seekg(offset);
  in.read(out.data(), n);
  if (!in) return absl::InternalError(absl::StrCat("cannot read ", path));
  return out;
}

}  // namespace nanonas::coordinator
