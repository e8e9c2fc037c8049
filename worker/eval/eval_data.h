// nanonas-eval's inputs and outputs on disk: the --data and --test-data sources (a class folder or
// the Debian Fashion-MNIST package), and the --export directory. Thread-compatible functions.
//
//   NANONAS_ASSIGN_OR_RETURN(DataSource src, ParseDataSource("fashion-mnist:2000"));
//   NANONAS_ASSIGN_OR_RETURN(Dataset train, LoadData(src, "28x28x1", /*threads=*/1));
#ifndef NANONAS_WORKER_EVAL_EVAL_DATA_H_
#define NANONAS_WORKER_EVAL_EVAL_DATA_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace nanonas {

// --data: fashion-mnist[:N] (the first N training images of the package) or a folder path;
// --test-data: fashion-mnist-test[:N] (of its 10,000 test images) or a folder path.
struct DataSource {
  bool fashion_mnist = false;
  int64_t limit = 0;  // :N (0 = all)
  std::string path;
};

// INVALID_ARGUMENT (naming the flag and the accepted forms) for a bad :N.
absl::StatusOr<DataSource> ParseDataSource(const std::string& text);
absl::StatusOr<DataSource> ParseTestSource(const std::string& text);

// Loads the training data at `input_flag`'s shape ("" = 28x28x1 for Fashion-MNIST, 50x50x3 for
// folders; images are resized bilinearly).
absl::StatusOr<Dataset> LoadData(const DataSource& src, const std::string& input_flag, int threads);

// The test set at the training data's image shape, its labels in the training set's class order.
// INVALID_ARGUMENT when its classes differ from the training set's.
absl::StatusOr<Dataset> LoadTestData(const DataSource& src, const Dataset& train, int threads);

// Creates `dir` (and its parents) and checks that a file can be written there, so that a bad
// --export fails before the training rather than after it. FAILED_PRECONDITION otherwise.
absl::Status PrepareExportDir(const std::string& dir);

}  // namespace nanonas

#endif  // NANONAS_WORKER_EVAL_EVAL_DATA_H_
