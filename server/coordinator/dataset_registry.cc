#include "server/coordinator/dataset_registry.h"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/api/dataset_id.h"
#include "common/base/log.h"
#include "common/base/sha256.h"
#include "common/base/status_macros.h"
#include "common/data/dataset.h"
#include "common/data/pack.h"
#include "server/coordinator/dataset_registry_internal.h"

namespace nanonas::coordinator {

namespace fs = std::filesystem;
namespace v1 = nanonas::v1;
using dataset_internal::DatasetRoot;
using dataset_internal::RandomSuffix;
using dataset_internal::ReadFile;

namespace dataset_internal {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string RandomSuffix() {
  static std::atomic<uint64_t> counter{0};
  std::random_device rd;
  return absl::StrCat(rd(), "-", counter.fetch_add(1));
}

// A tar may hold root/<class>/... or <class>/... directly: descend through a lone folder.
std::filesystem::path DatasetRoot(const std::filesystem::path& tree) {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(tree, ec)) entries.push_back(e.path());
  if (entries.size() == 1 && fs::is_directory(entries[0])) {
    bool has_subdir = false;
    for (const auto& e : fs::directory_iterator(entries[0], ec)) {
      if (e.is_directory()) has_subdir = true;
    }
    if (has_subdir) return entries[0];
  }
  return tree;
}

}  // namespace dataset_internal

namespace {

absl::Status WriteProto(const google::protobuf::Message& msg, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !msg.SerializeToOstream(&out)) {
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  return absl::OkStatus();
}

bool IsImageName(const std::string& name) {
  std::string lower = absl::AsciiStrToLower(name);
  return absl::EndsWith(lower, ".jpg") || absl::EndsWith(lower, ".jpeg") ||
         absl::EndsWith(lower, ".png") || absl::EndsWith(lower, ".bmp");
}

// Fills class_names / num_images from root/<class>/<images>.
void DescribeFolder(const fs::path& root, v1::DatasetInfo* info) {
  std::vector<std::string> classes;
  int64_t images = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory()) continue;
    classes.push_back(entry.path().filename().string());
    for (const auto& file : fs::directory_iterator(entry.path(), ec)) {
      if (file.is_regular_file() && IsImageName(file.path().filename().string())) ++images;
    }
  }
  std::sort(classes.begin(), classes.end());
  info->clear_class_names();
  for (const auto& c : classes) info->add_class_names(c);
  info->set_num_images(images);
}

// Rejects absolute names and any ".." component; returns the normalised relative path.
absl::StatusOr<fs::path> SafeRelative(const std::string& name, const char* what) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty path"));
  if (name[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", name, "' is absolute; give a path inside the root"));
  }
  fs::path out;
  for (absl::string_view part : absl::StrSplit(name, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " '", name, "' escapes the root (contains '..')"));
    }
    out /= std::string(part);
  }
  return out;
}

// Extracts a tar (optionally compressed) into `dest` with file and total size checks.
absl::Status ExtractArchive(const std::string& archive_path, const fs::path& dest,
                            int64_t max_bytes) {
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  auto closer = [](struct archive* p) { archive_read_free(p); };
  std::unique_ptr<struct archive, decltype(closer)> guard(a, closer);
  if (archive_read_open_filename(a, archive_path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("the upload is not a readable tar archive: ", archive_error_string(a)));
  }
  int64_t total = 0;
  int files = 0;
  struct archive_entry* entry;
  while (true) {
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return absl::InvalidArgumentError(
          absl::StrCat("the upload is not a valid tar archive: ", archive_error_string(a)));
    }
    const char* name = archive_entry_pathname(entry);
    NANONAS_ASSIGN_OR_RETURN(fs::path rel, SafeRelative(name ? name : "", "archive entry"));
    if (rel.empty()) continue;
    const auto type = archive_entry_filetype(entry);
    const fs::path target = dest / rel;
    std::error_code ec;
    if (type == AE_IFDIR) {
      fs::create_directories(target, ec);
      continue;
    }
    if (type != AE_IFREG) {
      return absl::InvalidArgumentError(absl::StrCat(
          "archive entry '", name, "' is not a regular file or folder (links are not allowed)"));
    }
    fs::create_directories(target.parent_path(), ec);
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", target.string()));
    char buf[1 << 16];
    while (true) {
      la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
      if (n < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("archive entry '", name, "' is corrupt: ", archive_error_string(a)));
      }
      if (n == 0) break;
      total += n;
      if (total > max_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "the archive extracts to more than ", max_bytes, " bytes; upload a smaller dataset"));
      }
      out.write(buf, n);
    }
    ++files;
  }
  if (files == 0) return absl::InvalidArgumentError("the archive holds no files");
  return absl::OkStatus();
}

}  // namespace

DatasetRegistry::DatasetRegistry(DatasetRegistryOptions options) : options_(std::move(options)) {}
DatasetRegistry::~DatasetRegistry() = default;

absl::Status DatasetRegistry::Init() {
  if (options_.state_dir.empty()) return absl::InvalidArgumentError("state dir is empty");
  const fs::path datasets = fs::path(options_.state_dir) / "datasets";
  std::error_code ec;
  fs::create_directories(datasets / "decoded" / "index", ec);
  if (!ec) fs::create_directories(datasets / "tmp", ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", options_.state_dir, "/datasets: ", ec.message()));
  }
  // What a killed process left: decodes not yet renamed to their hash, half-written records,
  // upload staging.
  int stale = RemoveStaleDecodes();
  for (const auto& entry : fs::directory_iterator(datasets / "tmp", ec)) {
    std::error_code rm_ec;
    stale += fs::remove_all(entry.path(), rm_ec) > 0 ? 1 : 0;
  }
  if (stale > 0) {
    NANONAS_LOG(INFO) << "datasets: removed " << stale << " stale temporary files";
  }
  return absl::OkStatus();
}

std::string DatasetRegistry::InfoPath(const std::string& hex) const {
  return (fs::path(options_.state_dir) / "datasets" / (hex + ".info")).string();
}
std::string DatasetRegistry::ContentDir(const std::string& hex) const {
  return (fs::path(options_.state_dir) / "datasets" / hex).string();
}

absl::StatusOr<std::unique_ptr<DatasetRegistry::Upload>> DatasetRegistry::BeginUpload(
    const v1::UploadHeader& header) {
  v1::UploadHeader h = header;
  if (h.format().empty()) h.set_format("tar");
  if (h.format() != "tar" && h.format() != "tar.gz" && h.format() != "nnds") {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload format '", h.format(), "' is unknown: use \"tar\", \"tar.gz\" or \"nnds\""));
  }
  if (h.size_bytes() < 0) {
    return absl::InvalidArgumentError("upload size_bytes is negative");
  }
  if (h.size_bytes() > options_.max_upload_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("upload of ", h.size_bytes(), " bytes exceeds the server's limit of ",
                     options_.max_upload_bytes, " bytes (--max-upload-bytes)"));
  }
  if (!h.sha256().empty() && !IsSha256Hex(absl::AsciiStrToLower(h.sha256()))) {
    return absl::InvalidArgumentError("upload sha256 must be 64 hex digits");
  }
  std::string temp =
      (fs::path(options_.state_dir) / "datasets" / "tmp" / ("upload-" + RandomSuffix())).string();
  return std::unique_ptr<Upload>(new Upload(this, std::move(h), std::move(temp)));
}

DatasetRegistry::Upload::Upload(DatasetRegistry* registry, v1::UploadHeader header,
                                std::string temp_path)
    : registry_(registry),
      header_(std::move(header)),
      temp_path_(std::move(temp_path)),
      out_(temp_path_, std::ios::binary | std::ios::trunc),
      hash_(std::make_unique<Sha256>()) {}

DatasetRegistry::Upload::~Upload() {
  out_.close();
  std::error_code ec;
  fs::remove(temp_path_, ec);
}

absl::Status DatasetRegistry::Upload::Append(absl::string_view chunk) {
  if (finished_) return absl::FailedPreconditionError("upload already finished");
  if (!out_) return absl::InternalError("cannot write the upload's temporary file");
  received_ += static_cast<int64_t>(chunk.size());
  if (received_ > registry_->options_.max_upload_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("upload exceeds the server's limit of ",
                                                     registry_->options_.max_upload_bytes,
                                                     " bytes (--max-upload-bytes)"));
  }
  if (header_.size_bytes() > 0 && received_ > header_.size_bytes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload is longer than the announced size_bytes ", header_.size_bytes()));
  }
  out_.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  hash_->Update(chunk);
  return absl::OkStatus();
}

absl::StatusOr<v1::DatasetInfo> DatasetRegistry::Upload::Finish() {
  if (finished_) return absl::FailedPreconditionError("upload already finished");
  finished_ = true;
  out_.close();
  if (received_ == 0) return absl::InvalidArgumentError("the upload is empty: send the archive");
  if (header_.size_bytes() > 0 && received_ != header_.size_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload ended after ", received_, " bytes; the header announced ", header_.size_bytes()));
  }
  const std::string hex = hash_->HexDigest();
  if (!header_.sha256().empty() && absl::AsciiStrToLower(header_.sha256()) != hex) {
    return absl::InvalidArgumentError(absl::StrCat("upload digest mismatch: received sha256 ", hex,
                                                   ", header says ", header_.sha256()));
  }
  // Deduplicate identical uploads.
  auto existing = registry_->Get(DatasetIdFromHex(hex));
  if (existing.ok()) return existing;

  const fs::path staging =
      fs::path(registry_->options_.state_dir) / "datasets" / "tmp" / ("tree-" + RandomSuffix());
  std::error_code ec;
  fs::create_directories(staging, ec);
  auto cleanup = [&] { fs::remove_all(staging, ec); };
  v1::DatasetInfo info;
  info.set_id(DatasetIdFromHex(hex));
  info.set_size_bytes(received_);
  info.set_source("upload");
  if (header_.format() == "nnds") {
    auto data = InspectDatasetFile(temp_path_);  // streamed: never the whole file in memory
    if (!data.ok()) {
      cleanup();
      if (data.status().code() != absl::StatusCode::kInvalidArgument) return data.status();
      return absl::InvalidArgumentError(
          absl::StrCat("the upload is not a valid nanonas dataset: ", data.status().message()));
    }
    if (data->class_names.size() < 2) {
      cleanup();
      return absl::InvalidArgumentError(absl::StrCat("the dataset has ", data->class_names.size(),
                                                     " class; a classifier needs at least 2"));
    }
    info.set_num_images(data->num_images);
    for (const auto& c : data->class_names) info.add_class_names(c);
    fs::rename(temp_path_, staging / "data.nnds", ec);
  } else {
    absl::Status st =
        ExtractArchive(temp_path_, staging / "tree", registry_->options_.max_extracted_bytes);
    if (!st.ok()) {
      cleanup();
      return st;
    }
    DescribeFolder(DatasetRoot(staging / "tree"), &info);
  }
  if (ec) {
    cleanup();
    return absl::InternalError(absl::StrCat("cannot store the upload: ", ec.message()));
  }
  const fs::path final_dir = registry_->ContentDir(hex);
  fs::remove_all(final_dir, ec);
  fs::rename(staging, final_dir, ec);
  if (ec) {
    cleanup();
    return absl::InternalError(absl::StrCat("cannot store the upload: ", ec.message()));
  }
  return registry_->Register(hex, info);
}

absl::StatusOr<v1::DatasetInfo> DatasetRegistry::Register(const std::string& hex,
                                                          const v1::DatasetInfo& info) {
  NANONAS_RETURN_IF_ERROR(WriteProto(info, InfoPath(hex)));
  NANONAS_LOG(INFO) << "dataset " << info.id() << " registered (" << info.source() << ", "
                    << info.num_images() << " images, " << info.class_names_size() << " classes)";
  return info;
}

absl::StatusOr<v1::DatasetInfo> DatasetRegistry::RegisterPath(const std::string& relative_path) {
  if (options_.data_dir.empty()) {
    return absl::FailedPreconditionError(
        "this coordinator has no --data-dir; upload the dataset instead (UploadDataset)");
  }
  NANONAS_ASSIGN_OR_RETURN(fs::path rel, SafeRelative(relative_path, "dataset path"));
  std::error_code ec;
  const fs::path base = fs::canonical(options_.data_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("--data-dir ", options_.data_dir, " is missing"));
  fs::path root = fs::weakly_canonical(base / rel, ec);
  if (!fs::exists(root) || !fs::is_directory(root)) {
    return absl::NotFoundError(
        absl::StrCat("dataset path '", relative_path, "' is not a folder under the data dir"));
  }
  root = fs::canonical(root, ec);
  // Symlinks may still lead outside: compare canonical paths component-wise.
  auto b = base.begin();
  auto r = root.begin();
  for (; b != base.end(); ++b, ++r) {
    if (r == root.end() || *b != *r) {
      return absl::InvalidArgumentError(
          absl::StrCat("dataset path '", relative_path, "' escapes the data dir"));
    }
  }
  // Content hash over sorted names and bytes.
  std::vector<fs::path> files;
  const fs::recursive_directory_iterator end;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != end; it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file()) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  Sha256 hash;
  int64_t total = 0;
  for (const auto& f : files) {
    const std::string name = fs::relative(f, root).string();
    hash.Update(name);
    hash.Update(absl::string_view("\0", 1));
    auto bytes = ReadFile(f.string());
    if (!bytes.ok()) return bytes.status();
    hash.Update(*bytes);
    total += static_cast<int64_t>(bytes->size());
  }
  const std::string hex = hash.HexDigest();
  v1::DatasetInfo info;
  info.set_id(DatasetIdFromHex(hex));
  info.set_size_bytes(total);
  info.set_source(fs::relative(root, base).string());
  DescribeFolder(root, &info);
  return Register(hex, info);
}

absl::StatusOr<v1::DatasetInfo> DatasetRegistry::Get(const std::string& id) {
  if (id.empty()) {
    return absl::InvalidArgumentError(
        "dataset id is empty: upload a dataset (UploadDataset) or register a server path "
        "(RegisterDatasetPath) first");
  }
  NANONAS_ASSIGN_OR_RETURN(std::string hex, DatasetIdHex(id));
  auto bytes = ReadFile(InfoPath(hex));
  if (!bytes.ok()) {
    return absl::NotFoundError(absl::StrCat(
        "dataset '", id, "' is unknown to this coordinator: upload it or register its path first"));
  }
  v1::DatasetInfo info;
  if (!info.ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("dataset record of ", id, " is corrupt"));
  }
  return info;
}

absl::StatusOr<std::vector<v1::DatasetInfo>> DatasetRegistry::List() {
  const fs::path dir = fs::path(options_.state_dir) / "datasets";
  std::error_code ec;
  std::vector<std::string> hexes;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const fs::path& p = entry.path();
    if (p.extension() == ".info" && DatasetIdHex(p.stem().string()).ok()) {
      hexes.push_back(p.stem().string());
    }
  }
  if (ec)
    return absl::InternalError(absl::StrCat("cannot list ", dir.string(), ": ", ec.message()));
  std::sort(hexes.begin(), hexes.end());
  std::vector<v1::DatasetInfo> out;
  for (const std::string& hex : hexes) {
    auto info = Get(DatasetIdFromHex(hex));
    if (info.ok()) {
      out.push_back(*std::move(info));
    } else {
      NANONAS_LOG(WARNING) << "skipping dataset " << hex << ": " << info.status().message();
    }
  }
  return out;
}

}  // namespace nanonas::coordinator
