// Datasets known to the coordinator, kept on disk under <state-dir>/datasets:
//   <hex>.info            DatasetInfo (binary proto) of an uploaded or registered dataset
//   <hex>/tree/...        an uploaded tar archive, extracted (root/<class>/<images>)
//   <hex>/data.nnds       an uploaded nanonas binary dataset
//   decoded/<hash>.nnds   a dataset decoded at a job's input size (SerializeDataset), named by its
//                         ContentHash: what workers fetch and train on
//   decoded/index/<dataset-hex>@<H>x<W>x<C>
//                         which decoded file a dataset has at an input size (a small text record,
//                         written once the file is complete): decoding happens once per (dataset,
//                         input size), across restarts
// Uploaded datasets are named by the SHA-256 of the uploaded bytes ("sha256:<hex>"), registered
// folders by the SHA-256 of their file names and contents; identical content is stored once.
//
// Thread-safe. Decode streams (common/data/pack.h): it holds one chunk of pixels, never a dataset.
#ifndef NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_H_
#define NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_H_

#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/arch/architecture.h"
#include "common/base/sha256.h"
#include "nanonas/v1/nanonas.pb.h"

namespace nanonas::coordinator {

struct DatasetRegistryOptions {
  std::string state_dir;                    // required
  std::string data_dir;                     // optional: RegisterPath is refused without it
  int64_t max_upload_bytes = 1LL << 30;     // archive bytes of one upload
  int64_t max_extracted_bytes = 4LL << 30;  // bytes written when extracting one archive
  int decode_threads = 0;                   // threads decoding images; 0 = hardware concurrency
  // Called (without locks held) when a Decode call finds the same (dataset, input size) being
  // decoded by another call and is about to wait for it. For tests; may be empty.
  std::function<void()> on_coalesced_decode;
};

// A dataset decoded at one input size, ready for workers.
struct DecodedDataset {
  std::string id;           // "sha256:" + ContentHash of the decoded dataset
  int64_t file_bytes = 0;   // size of the serialized file
  int64_t pixel_bytes = 0;  // N * H * W * C
  int64_t num_images = 0;
  std::vector<std::string> class_names;
  // True when this call decoded nothing: the decoded file already existed (an earlier call, a
  // previous process) or a concurrent call for the same key decoded it.
  bool reused = false;
};

// Decode's progress: images decoded so far out of the dataset's total.
using DecodeProgress = std::function<void(int64_t images_done, int64_t images_total)>;

class DatasetRegistry {
 public:
  explicit DatasetRegistry(DatasetRegistryOptions options);
  ~DatasetRegistry();

  // Creates the folders and removes what a killed process left half-written (decoded files not
  // yet renamed, temporary index records, upload staging). Call once before anything else.
  absl::Status Init();

  // One client-streamed upload. Not thread-safe itself (one RPC drives it).
  class Upload {
   public:
    ~Upload();
    // RESOURCE_EXHAUSTED past the size limit, INVALID_ARGUMENT past the announced size.
    absl::Status Append(absl::string_view chunk);
    // Checks size and digest, extracts/validates the archive and registers it (or returns the
    // identical dataset already there).
    absl::StatusOr<nanonas::v1::DatasetInfo> Finish();

   private:
    friend class DatasetRegistry;
    Upload(DatasetRegistry* registry, nanonas::v1::UploadHeader header, std::string temp_path);
    DatasetRegistry* registry_;
    nanonas::v1::UploadHeader header_;
    std::string temp_path_;
    std::ofstream out_;
    std::unique_ptr<Sha256> hash_;
    int64_t received_ = 0;
    bool finished_ = false;
  };

  // Validates the header (format, announced size against the limit) and opens a temp file.
  absl::StatusOr<std::unique_ptr<Upload>> BeginUpload(const nanonas::v1::UploadHeader& header);

  // Registers a folder root/<class>/<images> under data_dir. Paths escaping data_dir, absolute
  // paths and missing folders are INVALID_ARGUMENT / NOT_FOUND; no data_dir: FAILED_PRECONDITION.
  absl::StatusOr<nanonas::v1::DatasetInfo> RegisterPath(const std::string& relative_path);

  // NOT_FOUND (naming the id) for an unknown dataset.
  absl::StatusOr<nanonas::v1::DatasetInfo> Get(const std::string& id);

  // Every registered dataset (uploaded or registered path), in id order. A corrupt record is
  // skipped (logged); an unreadable folder is an error.
  absl::StatusOr<std::vector<nanonas::v1::DatasetInfo>> List();

  // Decodes dataset `id` at `input` (channels 1 = grayscale, 3 = RGB) straight into
  // decoded/<hash>.nnds (streamed on decode_threads threads; nothing decoded is held in memory).
  // Once per (id, input): a later call, in this process or after a restart, finds the index
  // record and returns it with reused = true; a call while the same key is being decoded waits
  // for that decode and shares its result (reused = true). Different keys decode concurrently.
  // `progress` (may be empty) is called on this thread after each chunk of images, or once with
  // done == total when reused. Errors name the dataset: "dataset <id>: <reason naming the file>";
  // a failed decode leaves no file behind. Blocks for as long as the decode takes.
  absl::StatusOr<DecodedDataset> Decode(const std::string& id, const InputShape& input,
                                        const DecodeProgress& progress = nullptr);

  // Path of a decoded dataset file for FetchDataset; NOT_FOUND if absent.
  absl::StatusOr<std::string> DecodedPath(const std::string& decoded_id);

 private:
  absl::StatusOr<nanonas::v1::DatasetInfo> Register(const std::string& hex,
                                                    const nanonas::v1::DatasetInfo& info);
  std::string InfoPath(const std::string& hex) const;
  std::string ContentDir(const std::string& hex) const;
  std::string DecodedDir() const;
  std::string IndexPath(const std::string& key) const;
  // Removes decoded files not yet renamed to their hash and half-written index records; returns
  // how many.
  int RemoveStaleDecodes();
  // Whether `d`'s decoded file is on disk at its recorded size.
  bool DecodedFileIsThere(const DecodedDataset& d) const;
  // The index record of `key` when its file is there, else the decode (and the record).
  absl::StatusOr<DecodedDataset> DecodeOnce(const nanonas::v1::DatasetInfo& info,
                                            const std::string& key, const InputShape& input,
                                            const DecodeProgress& progress);
  // Packs the dataset at `input` into `out_path`.
  absl::StatusOr<DecodedDataset> Pack(const nanonas::v1::DatasetInfo& info, const InputShape& input,
                                      const std::string& out_path, const DecodeProgress& progress);

  // One decode in progress; callers for the same key wait for `done`.
  struct InFlight {
    bool done = false;
    absl::StatusOr<DecodedDataset> result;
  };

  const DatasetRegistryOptions options_;
  absl::Mutex mu_;
  // "<dataset-hex>@HxWxC" -> decoded dataset (a cache of the index records).
  std::map<std::string, DecodedDataset> decoded_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<InFlight>> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_H_
