// Fakes for driving the coordinator core without threads, gRPC or training.
#ifndef NANONAS_TESTS_SUPPORT_COORDINATOR_FAKES_H_
#define NANONAS_TESTS_SUPPORT_COORDINATOR_FAKES_H_

#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/coordinator/artifact_store.h"
#include "server/coordinator/coordinator.h"
#include "tests/support/fake_preparer.h"
#include "tests/support/memory_store.h"

namespace nanonas::coordinator::testing {

namespace v1 = nanonas::v1;

// Records every Start; the test finishes evaluations by calling Complete/Break.
class FakeConnector : public WorkerConnector {
 public:
  struct Call {
    v1::WorkerDescription worker;
    v1::EvaluateRequest request;
    EvaluationCallbacks callbacks;
    bool cancelled = false;
    bool done = false;
  };
  class Handle : public RunningEvaluation {
   public:
    explicit Handle(std::shared_ptr<Call> call) : call_(std::move(call)) {}
    void Cancel() override { call_->cancelled = true; }

   private:
    std::shared_ptr<Call> call_;
  };

  std::unique_ptr<RunningEvaluation> Start(const v1::WorkerDescription& worker,
                                           const v1::EvaluateRequest& request,
                                           EvaluationCallbacks callbacks) override {
    auto call = std::make_shared<Call>();
    call->worker = worker;
    call->request = request;
    call->callbacks = std::move(callbacks);
    calls.push_back(call);
    return std::make_unique<Handle>(call);
  }

  // Calls not finished yet.
  std::vector<std::shared_ptr<Call>> Open() const {
    std::vector<std::shared_ptr<Call>> out;
    for (const auto& c : calls) {
      if (!c->done) out.push_back(c);
    }
    return out;
  }
  static void Complete(const std::shared_ptr<Call>& call, double accuracy) {
    v1::EvaluateResult r;
    r.set_state(v1::CANDIDATE_STATE_DONE);
    r.set_best_validation_accuracy(accuracy);
    r.set_peak_memory_bytes(12345678);
    r.set_duration_seconds(1.5);
    auto* e = r.add_epochs();
    e->set_epoch(1);
    e->set_validation_accuracy(accuracy);
    call->done = true;
    call->callbacks.on_done(r);
  }
  // A final training's result: the best of `epochs` epochs and a "model" of `tflite_bytes` bytes.
  static void CompleteFinal(const std::shared_ptr<Call>& call, int64_t tflite_bytes,
                            bool with_test) {
    v1::EvaluateResult r;
    r.set_state(v1::CANDIDATE_STATE_DONE);
    for (int e = 1; e <= 3; ++e) {
      auto* ep = r.add_epochs();
      ep->set_epoch(e);
      ep->set_validation_accuracy(0.7 + 0.05 * (e == 2));
    }
    r.set_best_epoch(2);
    r.set_best_validation_accuracy(0.75);
    r.set_quantized_validation_accuracy(0.74);
    if (with_test) {
      r.set_has_test_accuracy(true);
      r.set_float_test_accuracy(0.72);
      r.set_quantized_test_accuracy(0.71);
      r.set_test_images(50);
    }
    std::string model(static_cast<size_t>(tflite_bytes), '\0');
    for (size_t i = 0; i < model.size(); ++i) model[i] = static_cast<char>(i * 7);
    r.set_tflite(model);
    r.set_weights("w");
    r.set_peak_memory_bytes(2222);
    r.set_duration_seconds(9.0);
    call->done = true;
    call->callbacks.on_done(r);
  }
  static void Finish(const std::shared_ptr<Call>& call, absl::StatusOr<v1::EvaluateResult> r) {
    call->done = true;
    call->callbacks.on_done(std::move(r));
  }
  // Ends every open call (as a transport would after a cancel) so the core can be destroyed.
  void DrainAll() {
    for (const auto& c : Open()) Finish(c, absl::CancelledError("test teardown"));
  }

  std::vector<std::shared_ptr<Call>> calls;
};

inline std::string Hex64(char ch) { return std::string(64, ch); }

// The datasets the fakes know: "sha256:" + Hex64('a') is a 2-class set of 300 images; Hex64('b')
// a test set with the same classes, Hex64('c') one with other classes; Hex64('1') has one class.
// Null for an unknown id.
inline std::optional<DecodedDataset> FakeDataset(const std::string& id, const InputShape& input) {
  DecodedDataset d;
  if (id == "sha256:" + Hex64('a')) {
    d.id = Hex64('d');
    d.num_images = 300;
    d.pixel_bytes = 300LL * input.height * input.width * input.channels;
    d.class_names = {"horizontal", "vertical"};
  } else if (id == "sha256:" + Hex64('b')) {
    d.id = Hex64('f');
    d.num_images = 50;
    d.class_names = {"horizontal", "vertical"};
  } else if (id == "sha256:" + Hex64('c')) {
    d.id = Hex64('9');
    d.num_images = 50;
    d.class_names = {"cats", "dogs"};
  } else if (id == "sha256:" + Hex64('1')) {
    d.id = Hex64('e');
    d.num_images = 10;
    d.class_names = {"only"};
  } else {
    return std::nullopt;
  }
  return d;
}

inline absl::Status UnknownDataset(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("dataset '", id, "' is unknown to this coordinator"));
}

// The registry's Get over FakeDataset.
inline DatasetLookup FakeLookup() {
  return [](const std::string& id) -> absl::StatusOr<v1::DatasetInfo> {
    std::optional<DecodedDataset> d = FakeDataset(id, InputShape{});
    if (!d.has_value()) return UnknownDataset(id);
    v1::DatasetInfo info;
    info.set_id(id);
    info.set_source("upload");
    info.set_num_images(d->num_images);
    for (const auto& c : d->class_names) info.add_class_names(c);
    return info;
  };
}

// Decoding over FakeDataset: reports 0 then all images.
inline PreparationDecoder FakePreparationDecoder() {
  return [](const std::string& id, const InputShape& input,
            const ImagesProgress& progress) -> absl::StatusOr<PreparedDataset> {
    std::optional<DecodedDataset> d = FakeDataset(id, input);
    if (!d.has_value()) return UnknownDataset(id);
    if (progress) {
      progress(0, d->num_images);
      progress(d->num_images, d->num_images);
    }
    return PreparedDataset{*d, false, 0.0};
  };
}

// RAM grows with k and c so that limits can cut rows: ram = 1000 k (c + 1).
inline ResourceModel FakeResources() {
  return [](const Architecture& a) -> absl::StatusOr<McuFigures> {
    McuFigures f;
    f.ram_bytes = 1000LL * a.k() * (a.c() + 1);
    f.flash_bytes = 500LL * a.k();
    f.macc = a.macc;
    return f;
  };
}

inline v1::JobSpec GoodSpec() {
  v1::JobSpec spec;
  spec.set_name("stripes");
  spec.set_dataset_id("sha256:" + Hex64('a'));
  spec.mutable_input()->set_height(50);
  spec.mutable_input()->set_width(50);
  spec.mutable_input()->set_channels(3);
  spec.mutable_constraints()->set_ram_bytes(1'000'000);
  spec.mutable_constraints()->set_flash_bytes(1'000'000);
  spec.mutable_final_training()->set_skip(true);  // tests of the final training clear it
  return spec;
}

// Everything a core needs, with a manual clock.
struct Harness {
  explicit Harness(CoordinatorStore* shared_store = nullptr, CoordinatorMetrics* metrics = nullptr,
                   int max_attempts = 3, bool speculate = false) {
    store = shared_store != nullptr ? shared_store : &own_store;
    CoordinatorOptions options;
    options.clock = [this] { return now; };
    options.max_attempts = max_attempts;
    options.speculate = speculate;
    options.worker_timeout = absl::Milliseconds(3000);
    CoordinatorDeps deps;
    deps.store = store;
    deps.connector = &connector;
    deps.lookup = FakeLookup();
    deps.preparer = &preparer;
    deps.resource_model = FakeResources();
    deps.host_memory_model = [this](const Architecture& a, int64_t, const v1::EvaluationSettings&) {
      return host_bytes_per_k * a.k();
    };
    deps.metrics = metrics;
    deps.artifacts = &artifacts;
    core = std::make_unique<Coordinator>(options, deps);
  }
  ~Harness() {
    Crash();
    std::error_code ec;
    std::filesystem::remove_all(artifact_dir, ec);
  }
  // Stops the core as a kill would leave the store: results arriving later are ignored.
  void Crash() {
    if (!core) return;
    core->Shutdown();
    connector.DrainAll();
    preparer.DrainAll();
    core.reset();
  }
  void AddWorker(const std::string& id, int slots = 1) {
    v1::WorkerDescription w;
    w.set_id(id);
    w.set_address(id + ":1");
    w.set_slots(slots);
    w.set_memory_budget_bytes(1LL << 30);
    auto r = core->RegisterWorker(w);
    if (!r.ok()) std::abort();
  }

  // Declared first: the core (below) writes here.
  std::string artifact_dir =
      (std::filesystem::temp_directory_path() /
       absl::StrCat("nanonas-artifacts-", getpid(), "-", reinterpret_cast<uintptr_t>(this)))
          .string();
  ArtifactStore artifacts{artifact_dir};
  absl::Time now = absl::FromUnixSeconds(1'700'000'000);
  int64_t host_bytes_per_k = 1;
  MemoryStore own_store;
  CoordinatorStore* store;
  FakeConnector connector;
  // Finishes each preparation inside Start unless the test sets preparer.hold.
  FakePreparer preparer{FakePreparationDecoder()};
  std::unique_ptr<Coordinator> core;
};

}  // namespace nanonas::coordinator::testing

#endif  // NANONAS_TESTS_SUPPORT_COORDINATOR_FAKES_H_
