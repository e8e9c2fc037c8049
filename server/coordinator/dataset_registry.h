// Datasets known to the coordinator, kept on disk under <state-dir>/datasets:
//   <hex>.info            DatasetInfo (binary proto) of an uploaded or registered dataset
//   <hex>/tree/...        an uploaded tar archive, extracted (root/<class>/<images>)
//   <hex>/data.nnds       an uploaded nanonas binary dataset
//   decoded/<hash>.nnds   a dataset decoded at a job's input size (SerializeDataset), named by its
//                         ContentHash: what workers fetch and train on
// Uploaded datasets are named by the SHA-256 of the uploaded bytes ("sha256:<hex>"), registered
// folders by the SHA-256 of their file names and contents; identical content is stored once.
//
// Thread-safe.
#ifndef NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_H_
#define NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_H_

#include <cstdint>
#include <fstream>
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
};

// A dataset decoded at one input size, ready for workers.
struct DecodedDataset {
  std::string id;           // "sha256:" + ContentHash of the decoded dataset
  int64_t file_bytes = 0;   // size of the serialized file
  int64_t pixel_bytes = 0;  // N * H * W * C
  int64_t num_images = 0;
  std::vector<std::string> class_names;
};

class DatasetRegistry {
 public:
  explicit DatasetRegistry(DatasetRegistryOptions options);
  ~DatasetRegistry();

  // Creates the folders. Call once before anything else.
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

  // Decodes dataset `id` at `input` (channels 1 = grayscale, 3 = RGB) and stores the result by its
  // content hash. Repeated calls with the same arguments reuse the stored file.
  absl::StatusOr<DecodedDataset> Decode(const std::string& id, const InputShape& input);

  // Path of a decoded dataset file for FetchDataset; NOT_FOUND if absent.
  absl::StatusOr<std::string> DecodedPath(const std::string& decoded_id);

 private:
  absl::StatusOr<nanonas::v1::DatasetInfo> Register(const std::string& hex,
                                                    const nanonas::v1::DatasetInfo& info);
  std::string InfoPath(const std::string& hex) const;
  std::string ContentDir(const std::string& hex) const;

  const DatasetRegistryOptions options_;
  absl::Mutex mu_;
  // (dataset id, "HxWxC") -> decoded dataset, for this process's life.
  std::map<std::string, DecodedDataset> decoded_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_DATASET_REGISTRY_H_
