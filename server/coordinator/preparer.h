// A job's dataset preparation: decode, validate and pack its training set (then its test set) at
// the job's input size, outside the coordinator's lock and outside the SubmitJob call. The
// coordinator depends on the DatasetPreparer interface; ThreadPreparer is the production one (its
// own worker thread(s), a decode function such as DatasetRegistry::Decode); tests use a fake whose
// preparations finish when the test says so (tests/support/fake_preparer.h).
//
// Callbacks: `progress` and then exactly one `done` per Start, from the preparer's threads (a fake
// may call them from inside Start: the coordinator never holds its lock while calling Start).
// `progress` is never called after `done`. After Cancel() the result is dropped: `done` still
// comes (CANCELLED when the preparation had not finished), possibly only after a decode that was
// already running ends.
//
// Thread-safe.
#ifndef NANONAS_SERVER_COORDINATOR_PREPARER_H_
#define NANONAS_SERVER_COORDINATOR_PREPARER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/arch/architecture.h"
#include "nanonas/v1/nanonas.pb.h"
#include "server/coordinator/dataset_registry.h"

namespace nanonas::coordinator {

// A dataset the registry knows (DatasetRegistry::Get): NOT_FOUND naming the id otherwise. Fast:
// SubmitJob calls it under no lock but inside the RPC.
using DatasetLookup =
    std::function<absl::StatusOr<nanonas::v1::DatasetInfo>(const std::string& dataset_id)>;

// Images decoded so far of one dataset (the registry's DecodeProgress has this shape).
using ImagesProgress = std::function<void(int64_t images_done, int64_t images_total)>;

// One dataset prepared at an input size. `reused`: it was already packed (nothing decoded).
struct PreparedDataset {
  DecodedDataset dataset;
  bool reused = false;
  double seconds = 0;  // wall time of its preparation (set by the preparer)
};

// Decodes dataset `id` at `input`, reporting progress (DatasetRegistry::Decode in production).
using PreparationDecoder = std::function<absl::StatusOr<PreparedDataset>(
    const std::string& id, const InputShape& input, const ImagesProgress& progress)>;

struct PreparationRequest {
  std::string job_id;
  std::string dataset_id;
  std::string test_dataset_id;  // empty: none
  InputShape input;
};

struct PreparationResult {
  PreparedDataset train;
  std::optional<PreparedDataset> test;  // when the request named a test set
};

class PreparationHandle {
 public:
  virtual ~PreparationHandle() = default;
  // Drops the result (see the file comment). Non-blocking.
  virtual void Cancel() = 0;
};

class DatasetPreparer {
 public:
  // Progress of the dataset being prepared (Job.preparation): first with images_done 0 when the
  // preparation begins, then as images are decoded.
  using ProgressFn = std::function<void(const nanonas::v1::Preparation& progress)>;
  // The prepared datasets, or the error (naming the dataset and the file at fault). An error of
  // the test set is prefixed "spec.test_dataset_id: ".
  using DoneFn = std::function<void(absl::StatusOr<PreparationResult> result)>;

  virtual ~DatasetPreparer() = default;
  virtual std::unique_ptr<PreparationHandle> Start(const PreparationRequest& request,
                                                   ProgressFn progress, DoneFn done) = 0;
};

// Runs the training set then the test set through `decode`, reporting each one's begin, its
// images (at most every 100 ms by `clock`, plus the last) and its end; used by ThreadPreparer.
// `cancelled` (optional) is asked between the datasets; `clock` defaults to absl::Now.
absl::StatusOr<PreparationResult> RunPreparation(const PreparationRequest& request,
                                                 const PreparationDecoder& decode,
                                                 const DatasetPreparer::ProgressFn& progress,
                                                 const std::function<bool()>& cancelled,
                                                 const std::function<absl::Time()>& clock);

struct ThreadPreparerOptions {
  int threads = 1;                    // preparations at a time (one decode already uses every core)
  std::function<absl::Time()> clock;  // default absl::Now (Preparation.seconds)
};

// The production preparer: a queue served by `threads` threads, oldest request first. The
// destructor cancels what is queued (their `done` comes, CANCELLED) and joins the threads, waiting
// for the decodes that are running.
class ThreadPreparer : public DatasetPreparer {
 public:
  ThreadPreparer(PreparationDecoder decode, ThreadPreparerOptions options = {});
  ~ThreadPreparer() override;

  std::unique_ptr<PreparationHandle> Start(const PreparationRequest& request, ProgressFn progress,
                                           DoneFn done) override;

 private:
  struct Task;
  class Handle;
  void Serve();

  const PreparationDecoder decode_;
  const ThreadPreparerOptions options_;
  absl::Mutex mu_;
  std::deque<std::shared_ptr<Task>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace nanonas::coordinator

#endif  // NANONAS_SERVER_COORDINATOR_PREPARER_H_
