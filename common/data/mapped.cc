#include "common/data/mapped.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace nanonas {
namespace {

// One read-only mapping, unmapped when the last Dataset sharing it goes.
struct Mapping {
  void* addr = MAP_FAILED;
  size_t length = 0;
  ~Mapping() {
    if (addr != MAP_FAILED) munmap(addr, length);
  }
};

// Closes a file descriptor on scope exit.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

absl::StatusOr<Dataset> MapDatasetFile(const std::string& path, bool verify_checksum) {
  Fd file{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (path.empty() || file.fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open the dataset file '", path, "': ", std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(file.fd, &st) != 0) {
    return absl::InternalError(absl::StrCat("cannot stat '", path, "': ", std::strerror(errno)));
  }
  const auto size = static_cast<size_t>(st.st_size);
  // An empty file cannot be mapped: its error is the one of too few bytes.
  if (size == 0) return ParseDatasetView("", 0, verify_checksum).status();
  auto mapping = std::make_shared<Mapping>();
  mapping->addr = mmap(nullptr, size, PROT_READ, MAP_SHARED, file.fd, 0);
  if (mapping->addr == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("cannot map '", path, "': ", std::strerror(errno)));
  }
  mapping->length = size;
  const char* bytes = static_cast<const char*>(mapping->addr);
  // The checksum (and the labels) are read front to back; the pixels later in shuffled batches.
  madvise(mapping->addr, size, verify_checksum ? MADV_SEQUENTIAL : MADV_NORMAL);
  absl::StatusOr<Dataset> data = ParseDatasetView(bytes, size, verify_checksum);
  madvise(mapping->addr, size, MADV_RANDOM);
  if (!data.ok()) return data.status();
  data->backing = std::shared_ptr<const void>(mapping, mapping->addr);
  return data;
}

}  // namespace nanonas
