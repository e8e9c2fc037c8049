#include "server/coordinator/preparer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/log.h"

namespace nanonas::coordinator {

namespace v1 = nanonas::v1;

namespace {

// The decoder may report every image; the coordinator needs a few reports a second.
constexpr absl::Duration kReportEvery = absl::Milliseconds(100);

absl::StatusOr<PreparedDataset> PrepareOne(const std::string& id, bool test_set,
                                           const InputShape& input,
                                           const PreparationDecoder& decode,
                                           const DatasetPreparer::ProgressFn& progress,
                                           const std::function<absl::Time()>& clock) {
  const absl::Time begin = clock();
  v1::Preparation p;
  p.set_dataset_id(id);
  p.set_test_set(test_set);
  if (progress) progress(p);
  absl::Time last_report = begin;
  auto on_images = [&](int64_t done, int64_t total) {
    const absl::Time now = clock();
    if (done < total && now - last_report < kReportEvery) return;
    last_report = now;
    p.set_images_done(done);
    p.set_images_total(total);
    p.set_seconds(absl::ToDoubleSeconds(now - begin));
    if (progress) progress(p);
  };
  absl::StatusOr<PreparedDataset> out = decode(id, input, on_images);
  if (!out.ok()) return out.status();
  out->seconds = absl::ToDoubleSeconds(clock() - begin);
  p.set_images_done(out->dataset.num_images);
  p.set_images_total(out->dataset.num_images);
  p.set_seconds(out->seconds);
  p.set_reused(out->reused);
  if (progress) progress(p);
  return out;
}

}  // namespace

absl::StatusOr<PreparationResult> RunPreparation(const PreparationRequest& request,
                                                 const PreparationDecoder& decode,
                                                 const DatasetPreparer::ProgressFn& progress,
                                                 const std::function<bool()>& cancelled,
                                                 const std::function<absl::Time()>& clock) {
  const std::function<absl::Time()> now = clock ? clock : [] { return absl::Now(); };
  PreparationResult result;
  auto train = PrepareOne(request.dataset_id, false, request.input, decode, progress, now);
  if (!train.ok()) return train.status();
  result.train = *std::move(train);
  if (request.test_dataset_id.empty()) return result;
  if (cancelled && cancelled()) return absl::CancelledError("the preparation was cancelled");
  auto test = PrepareOne(request.test_dataset_id, true, request.input, decode, progress, now);
  if (!test.ok()) {
    return absl::Status(test.status().code(),
                        absl::StrCat("spec.test_dataset_id: ", test.status().message()));
  }
  result.test = *std::move(test);
  return result;
}

// One request and its callbacks. `cancelled` is set by the handle; the result is dropped then.
struct ThreadPreparer::Task {
  PreparationRequest request;
  ProgressFn progress;
  DoneFn done;
  absl::Mutex mu;
  bool cancelled ABSL_GUARDED_BY(mu) = false;

  bool IsCancelled() {
    absl::MutexLock lock(&mu);
    return cancelled;
  }
};

class ThreadPreparer::Handle : public PreparationHandle {
 public:
  explicit Handle(std::shared_ptr<Task> task) : task_(std::move(task)) {}
  void Cancel() override {
    absl::MutexLock lock(&task_->mu);
    task_->cancelled = true;
  }

 private:
  std::shared_ptr<Task> task_;
};

ThreadPreparer::ThreadPreparer(PreparationDecoder decode, ThreadPreparerOptions options)
    : decode_(std::move(decode)), options_(std::move(options)) {
  for (int i = 0; i < std::max(1, options_.threads); ++i)
    threads_.emplace_back([this] { Serve(); });
}

ThreadPreparer::~ThreadPreparer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

std::unique_ptr<PreparationHandle> ThreadPreparer::Start(const PreparationRequest& request,
                                                         ProgressFn progress, DoneFn done) {
  auto task = std::make_shared<Task>();
  task->request = request;
  task->progress = std::move(progress);
  task->done = std::move(done);
  {
    absl::MutexLock lock(&mu_);
    queue_.push_back(task);
  }
  return std::make_unique<Handle>(std::move(task));
}

void ThreadPreparer::Serve() {
  for (;;) {
    std::shared_ptr<Task> task;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPreparer* p)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->stopping_ || !p->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping, nothing left
      task = queue_.front();
      queue_.pop_front();
      stop = stopping_;
    }
    if (stop || task->IsCancelled()) {
      task->done(absl::CancelledError("the preparation was cancelled"));
      continue;
    }
    Task* t = task.get();
    auto progress = [t](const v1::Preparation& p) {
      if (!t->IsCancelled() && t->progress) t->progress(p);
    };
    absl::StatusOr<PreparationResult> result = RunPreparation(
        t->request, decode_, progress, [t] { return t->IsCancelled(); }, options_.clock);
    if (!result.ok()) {
      NANONAS_LOG(WARNING) << "job " << t->request.job_id
                           << " dataset preparation failed: " << result.status();
    }
    if (task->IsCancelled()) result = absl::CancelledError("the preparation was cancelled");
    task->done(std::move(result));
  }
}

}  // namespace nanonas::coordinator
