#include "client/tar_writer.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace nanonas {
namespace fs = std::filesystem;

namespace {

la_ssize_t AppendToString(struct archive*, void* client, const void* buffer, size_t length) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

}  // namespace

absl::StatusOr<TarredFolder> TarDatasetFolder(const std::string& dir, int64_t max_bytes) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("dataset folder '", dir, "' does not exist"));
  }
  if (!fs::is_directory(dir, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", dir, "' is not a folder; give a folder with one sub-folder of images per class"));
  }
  std::vector<fs::path> classes;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory() && e.path().filename().string()[0] != '.') classes.push_back(e.path());
  }
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", dir, "' has no class sub-folders; lay it out as ", dir, "/<class>/<image>"));
  }

  TarredFolder out;
  out.classes = static_cast<int>(classes.size());
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_write_new(),
                                                              archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open(a.get(), &out.bytes, nullptr, AppendToString, nullptr) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("libarchive: ", archive_error_string(a.get())));
  }
  std::vector<char> buf;
  for (const fs::path& cls : classes) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(cls, ec)) {
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      std::ifstream in(f, std::ios::binary);
      if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", f.string()));
      std::string data((std::istreambuf_iterator<char>(in)), {});
      if (static_cast<int64_t>(out.bytes.size() + data.size()) > max_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat("dataset folder '", dir,
                                                         "' is larger than ", max_bytes,
                                                         " bytes; upload a smaller one"));
      }
      std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)> entry(
          archive_entry_new(), archive_entry_free);
      const std::string name = cls.filename().string() + "/" + f.filename().string();
      archive_entry_set_pathname(entry.get(), name.c_str());
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(data.size()));
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), 0644);
      if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK ||
          archive_write_data(a.get(), data.data(), data.size()) < 0) {
        return absl::InternalError(absl::StrCat("libarchive: ", archive_error_string(a.get())));
      }
      ++out.files;
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("libarchive: ", archive_error_string(a.get())));
  }
  if (out.files == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", dir, "' holds no files in its class folders"));
  }
  return out;
}

}  // namespace nanonas
