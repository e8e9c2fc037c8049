// A DatasetPreparer for tests: records every Start; a preparation finishes inside Start (the
// default, as a preparer with nothing to wait for) or, with `hold` set, only when the test calls
// Report / Finish / Fail. Not thread-safe: the test thread drives it (the coordinator calls Start
// without its lock, so callbacks from inside Start are allowed).
#ifndef NANONAS_TESTS_SUPPORT_FAKE_PREPARER_H_
#define NANONAS_TESTS_SUPPORT_FAKE_PREPARER_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/coordinator/preparer.h"

namespace nanonas::coordinator::testing {

class FakePreparer : public DatasetPreparer {
 public:
  struct Call {
    PreparationRequest request;
    ProgressFn progress;
    DoneFn done;
    bool cancelled = false;
    bool finished = false;
    std::vector<nanonas::v1::Preparation> reported;  // every progress sent
  };
  class Handle : public PreparationHandle {
   public:
    explicit Handle(std::shared_ptr<Call> call) : call_(std::move(call)) {}
    void Cancel() override { call_->cancelled = true; }

   private:
    std::shared_ptr<Call> call_;
  };

  explicit FakePreparer(PreparationDecoder decode) : decode_(std::move(decode)) {}

  std::unique_ptr<PreparationHandle> Start(const PreparationRequest& request, ProgressFn progress,
                                           DoneFn done) override {
    auto call = std::make_shared<Call>();
    call->request = request;
    call->progress = std::move(progress);
    call->done = std::move(done);
    calls.push_back(call);
    auto handle = std::make_unique<Handle>(call);
    if (!hold) Finish(call);
    return handle;
  }

  // Sends progress of a dataset of the call.
  static void Report(const std::shared_ptr<Call>& call, const std::string& dataset_id, int64_t done,
                     int64_t total, bool test_set = false) {
    nanonas::v1::Preparation p;
    p.set_dataset_id(dataset_id);
    p.set_images_done(done);
    p.set_images_total(total);
    p.set_test_set(test_set);
    call->reported.push_back(p);
    call->progress(p);
  }
  // Prepares the call's datasets with the decoder (reporting their progress) and ends it.
  void Finish(const std::shared_ptr<Call>& call) {
    auto progress = [call](const nanonas::v1::Preparation& p) {
      call->reported.push_back(p);
      call->progress(p);
    };
    auto result = RunPreparation(call->request, decode_, progress, nullptr, nullptr);
    End(call, std::move(result));
  }
  // Ends the call with `result` (an error, or what a test made).
  static void End(const std::shared_ptr<Call>& call, absl::StatusOr<PreparationResult> result) {
    call->finished = true;
    call->done(std::move(result));
  }
  std::vector<std::shared_ptr<Call>> Open() const {
    std::vector<std::shared_ptr<Call>> out;
    for (const auto& c : calls) {
      if (!c->finished) out.push_back(c);
    }
    return out;
  }
  // Ends every open call (CANCELLED), as the production preparer does when it stops.
  void DrainAll() {
    for (const auto& c : Open()) End(c, absl::CancelledError("test teardown"));
  }

  bool hold = false;
  std::vector<std::shared_ptr<Call>> calls;

 private:
  PreparationDecoder decode_;
};

}  // namespace nanonas::coordinator::testing

#endif  // NANONAS_TESTS_SUPPORT_FAKE_PREPARER_H_
