// DatasetRegistry's decoded datasets: Decode (streamed packing, the index records, coalescing)
// and DecodedPath. The uploads and registrations are in dataset_registry.cc.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/api/dataset_id.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"
#include "common/data/pack.h"
#include "server/coordinator/dataset_registry.h"
#include "server/coordinator/dataset_registry_internal.h"

namespace nanonas::coordinator {

namespace fs = std::filesystem;
namespace v1 = nanonas::v1;
using dataset_internal::DatasetRoot;
using dataset_internal::RandomSuffix;
using dataset_internal::ReadFile;

namespace {

// Index records (decoded/index/<dataset-hex>@HxWxC), one "key value" per line:
//   nanonas-decoded 1 | id sha256:<hex> | file_bytes <n> | pixel_bytes <n> | num_images <n>
//   | class <C-escaped name> (one line per class, in label order)
std::string FormatIndexRecord(const DecodedDataset& d) {
  std::string out =
      absl::StrCat("nanonas-decoded 1\nid ", d.id, "\nfile_bytes ", d.file_bytes, "\npixel_bytes ",
                   d.pixel_bytes, "\nnum_images ", d.num_images, "\n");
  for (const std::string& c : d.class_names)
    absl::StrAppend(&out, "class ", absl::CEscape(c), "\n");
  return out;
}

// The record, or an error saying what is wrong with it.
absl::StatusOr<DecodedDataset> ParseIndexRecord(const std::string& text) {
  DecodedDataset d;
  bool versioned = false;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    bool ok = true;
    if (kv.first == "nanonas-decoded") {
      versioned = kv.second == "1";
    } else if (kv.first == "id") {
      d.id = std::string(kv.second);
      ok = DatasetIdHex(d.id).ok();
    } else if (kv.first == "file_bytes") {
      ok = absl::SimpleAtoi(kv.second, &d.file_bytes);
    } else if (kv.first == "pixel_bytes") {
      ok = absl::SimpleAtoi(kv.second, &d.pixel_bytes);
    } else if (kv.first == "num_images") {
      ok = absl::SimpleAtoi(kv.second, &d.num_images);
    } else if (kv.first == "class") {
      ok = absl::CUnescape(kv.second, &d.class_names.emplace_back());
    } else {
      ok = false;
    }
    if (!ok) return absl::DataLossError(absl::StrCat("bad line '", line, "'"));
  }
  if (!versioned || d.id.empty() || d.file_bytes <= 0 || d.class_names.empty()) {
    return absl::DataLossError("incomplete record");
  }
  return d;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp-" + RandomSuffix();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Removes the regular files in `dir` for which `stale(name)` holds; returns how many.
template <typename F>
int RemoveStaleFiles(const fs::path& dir, F&& stale) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code file_ec;
    if (!entry.is_regular_file(file_ec) || !stale(entry.path().filename().string())) continue;
    if (fs::remove(entry.path(), file_ec)) ++removed;
  }
  return removed;
}

bool IsDecodedFileName(const std::string& name) {
  return absl::EndsWith(name, ".nnds") && IsSha256Hex(name.substr(0, name.size() - 5));
}

}  // namespace

std::string DatasetRegistry::DecodedDir() const {
  return (fs::path(options_.state_dir) / "datasets" / "decoded").string();
}
std::string DatasetRegistry::IndexPath(const std::string& key) const {
  return (fs::path(DecodedDir()) / "index" / key).string();
}

int DatasetRegistry::RemoveStaleDecodes() {
  return RemoveStaleFiles(DecodedDir(),
                          [](const std::string& n) { return !IsDecodedFileName(n); }) +
         RemoveStaleFiles(fs::path(DecodedDir()) / "index",
                          [](const std::string& n) { return absl::StrContains(n, ".tmp-"); });
}

absl::StatusOr<DecodedDataset> DatasetRegistry::Decode(const std::string& id,
                                                       const InputShape& input,
                                                       const DecodeProgress& progress) {
  NANONAS_ASSIGN_OR_RETURN(const v1::DatasetInfo info, Get(id));
  NANONAS_ASSIGN_OR_RETURN(const std::string hex, DatasetIdHex(id));
  const std::string key = absl::StrCat(hex, "@", FormatInputShape(input));
  auto reused = [&](DecodedDataset d) {
    d.reused = true;
    if (progress) progress(d.num_images, d.num_images);
    return d;
  };
  std::optional<DecodedDataset> cached;
  std::shared_ptr<InFlight> flight;
  bool owner = false;
  {
    absl::MutexLock lock(&mu_);
    auto done = decoded_.find(key);
    if (done != decoded_.end() && DecodedFileIsThere(done->second)) {
      cached = done->second;
    } else {
      std::shared_ptr<InFlight>& slot = in_flight_[key];
      if (slot == nullptr) {
        slot = std::make_shared<InFlight>();
        owner = true;
      }
      flight = slot;
    }
  }
  if (cached.has_value()) return reused(*std::move(cached));  // progress outside the lock
  if (!owner) {
    if (options_.on_coalesced_decode) options_.on_coalesced_decode();
    absl::StatusOr<DecodedDataset> result;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&flight->done));
      result = flight->result;
    }
    if (!result.ok()) return result;
    return reused(*std::move(result));
  }
  absl::StatusOr<DecodedDataset> result = DecodeOnce(info, key, input, progress);
  absl::MutexLock lock(&mu_);
  flight->result = result;
  flight->done = true;
  in_flight_.erase(key);
  if (result.ok()) {
    DecodedDataset cached = *result;
    cached.reused = false;
    decoded_[key] = std::move(cached);
  }
  return result;
}

bool DatasetRegistry::DecodedFileIsThere(const DecodedDataset& d) const {
  auto hex = DatasetIdHex(d.id);
  if (!hex.ok()) return false;
  std::error_code ec;
  const auto size = fs::file_size(fs::path(DecodedDir()) / (*hex + ".nnds"), ec);
  return !ec && static_cast<int64_t>(size) == d.file_bytes;
}

absl::StatusOr<DecodedDataset> DatasetRegistry::DecodeOnce(const v1::DatasetInfo& info,
                                                           const std::string& key,
                                                           const InputShape& input,
                                                           const DecodeProgress& progress) {
  const std::string& id = info.id();
  const std::string index = IndexPath(key);
  std::error_code ec;
  if (fs::exists(index, ec)) {
    auto record = ReadFile(index);
    absl::StatusOr<DecodedDataset> d =
        record.ok() ? ParseIndexRecord(*record) : absl::StatusOr<DecodedDataset>(record.status());
    if (d.ok() && DecodedFileIsThere(*d)) {
      d->reused = true;
      if (progress) progress(d->num_images, d->num_images);
      return d;
    }
    NANONAS_LOG(WARNING) << "dataset " << id << ": decoding again at " << FormatInputShape(input)
                         << " (index record " << index << ": "
                         << (d.ok() ? "its file is missing" : d.status().message()) << ")";
  }
  const std::string pending =
      (fs::path(DecodedDir()) / ("pending-" + RandomSuffix() + ".nnds")).string();
  absl::StatusOr<DecodedDataset> out = Pack(info, input, pending, progress);
  if (!out.ok()) {
    fs::remove(pending, ec);
    return out;
  }
  NANONAS_ASSIGN_OR_RETURN(const std::string decoded_hex, DatasetIdHex(out->id));
  const fs::path file = fs::path(DecodedDir()) / (decoded_hex + ".nnds");
  // Identical content from another dataset or size may be there already (the same bytes).
  fs::rename(pending, file, ec);
  if (ec) {
    std::error_code rm_ec;
    fs::remove(pending, rm_ec);
    return absl::InternalError(absl::StrCat("cannot store ", file.string(), ": ", ec.message()));
  }
  NANONAS_RETURN_IF_ERROR(WriteFileAtomically(index, FormatIndexRecord(*out)));
  NANONAS_LOG(INFO) << "dataset " << id << " decoded at " << FormatInputShape(input) << ": "
                    << out->num_images << " images, " << out->file_bytes << " bytes, " << out->id;
  return out;
}

absl::StatusOr<DecodedDataset> DatasetRegistry::Pack(const v1::DatasetInfo& info,
                                                     const InputShape& input,
                                                     const std::string& out_path,
                                                     const DecodeProgress& progress) {
  const std::string& id = info.id();
  NANONAS_ASSIGN_OR_RETURN(const std::string hex, DatasetIdHex(id));
  const PackProgressFn report = [&](const PackProgress& p) {
    if (progress) progress(p.images_done, p.images_total);
  };
  const fs::path content(ContentDir(hex));
  std::error_code ec;
  absl::StatusOr<PackedDataset> packed;
  if (info.source() == "upload" && fs::exists(content / "data.nnds", ec)) {
    packed = PackDatasetFile((content / "data.nnds").string(), input, out_path, report);
  } else {
    fs::path root;
    if (info.source() == "upload") {
      root = DatasetRoot(content / "tree");
    } else {
      if (options_.data_dir.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "dataset ", id, " is a server path but the coordinator runs without --data-dir"));
      }
      root = fs::path(options_.data_dir) / info.source();
    }
    FolderOptions folder;
    folder.size = input;
    folder.threads = options_.decode_threads > 0
                         ? options_.decode_threads
                         : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    packed = PackImageFolder(root.string(), folder, out_path, report);
  }
  if (!packed.ok()) {
    return absl::Status(packed.status().code(),
                        absl::StrCat("dataset ", id, ": ", packed.status().message()));
  }
  if (packed->class_names.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("dataset ", id, " has ",
                                                   packed->class_names.size(),
                                                   " class; a classifier needs at least 2"));
  }
  DecodedDataset out;
  out.id = DatasetIdFromHex(packed->content_hex);
  out.file_bytes = packed->file_bytes;
  out.pixel_bytes = packed->pixel_bytes;
  out.num_images = packed->num_images;
  out.class_names = std::move(packed->class_names);
  return out;
}

absl::StatusOr<std::string> DatasetRegistry::DecodedPath(const std::string& decoded_id) {
  NANONAS_ASSIGN_OR_RETURN(const std::string hex, DatasetIdHex(decoded_id));
  const fs::path file = fs::path(options_.state_dir) / "datasets" / "decoded" / (hex + ".nnds");
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    return absl::NotFoundError(absl::StrCat("decoded dataset '", decoded_id, "' is unknown"));
  }
  return file.string();
}

}  // namespace nanonas::coordinator
