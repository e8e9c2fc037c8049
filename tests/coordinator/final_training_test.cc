// The job's final training in the coordinator core: dispatched after the search, streamed,
// re-dispatched after a lost worker, cancellable, resumed after a restart; its model and report
// become the job's artifacts.
#include <map>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/coordinator/coordinator.h"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::coordinator::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// The search of coordinator_test's table: returns (2, 1); flash = 500 k = 1000, RAM 4000.
std::map<std::pair<int, int>, double> Table() {
  return {{{1, 0}, 0.50}, {{1, 1}, 0.60}, {{1, 2}, 0.55}, {{2, 0}, 0.62}, {{2, 1}, 0.70},
          {{2, 2}, 0.70}, {{3, 0}, 0.65}, {{3, 1}, 0.68}, {{3, 2}, 0.69}, {{3, 3}, 0.66}};
}
constexpr int64_t kWinnerFlash = 1000;

v1::JobSpec FinalSpec(bool with_test = true) {
  v1::JobSpec spec = GoodSpec();
  spec.mutable_final_training()->set_skip(false);
  spec.mutable_final_training()->set_epochs(7);
  if (with_test) spec.set_test_dataset_id("sha256:" + Hex64('b'));
  return spec;
}

// Finishes the search's candidates with the table; returns the final training's call (or null
// when the job ended without one).
std::shared_ptr<FakeConnector::Call> RunSearch(Harness& h, const std::string& job_id) {
  const auto table = Table();
  for (int guard = 0; guard < 100; ++guard) {
    auto job = h.core->GetJob(job_id);
    if (!job.ok() || job->state() != v1::JOB_STATE_RUNNING) return nullptr;
    auto open = h.connector.Open();
    if (open.size() != 1u) return nullptr;
    if (open[0]->request.final_training()) return open[0];
    FakeConnector::Complete(open[0], table.at({open[0]->request.k(), open[0]->request.c()}));
  }
  return nullptr;
}

std::vector<std::string> Names(const v1::Job& job) {
  std::vector<std::string> out;
  for (const auto& a : job.artifacts()) out.push_back(a.name());
  return out;
}

TEST(CoordinatorFinalTrainingTest, DispatchedAfterTheSearchThenItsModelBecomesArtifacts) {
  Harness h;
  h.AddWorker("w1");
  auto submitted = h.core->SubmitJob(FinalSpec());
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto job = h.core->GetJob(submitted->id());  // prepared (the fake prepares inside Start)
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->test_evaluation_dataset_id(), Hex64('f'));
  EXPECT_EQ(job->spec().final_training().learning_rate(), 0.01f);
  EXPECT_EQ(job->spec().final_training().batch_size(), 128);
  auto call = RunSearch(h, job->id());
  ASSERT_NE(call, nullptr) << "no final training after the search";
  const v1::EvaluateRequest& req = call->request;
  EXPECT_EQ(req.k(), 2);
  EXPECT_EQ(req.c(), 1);
  EXPECT_EQ(req.final_settings().epochs(), 7);
  EXPECT_EQ(req.final_settings().batch_size(), 128);
  EXPECT_EQ(req.dataset_id(), Hex64('d'));
  EXPECT_EQ(req.test_dataset_id(), Hex64('f'));
  auto running = h.core->GetJob(job->id());
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->state(), v1::JOB_STATE_RUNNING);
  EXPECT_TRUE(running->result().found()) << "the search result is recorded before training";
  EXPECT_EQ(running->final_training().state(), v1::CANDIDATE_STATE_RUNNING);
  EXPECT_EQ(running->final_training().worker(), "w1");
  EXPECT_EQ(running->final_training().attempts(), 1);
  EXPECT_TRUE(running->artifacts().empty());

  // Progress streams like a candidate's.
  Coordinator::WatchCursor cursor;
  bool ended = false;
  ASSERT_TRUE(h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended).ok());
  v1::EvaluateEvent progress;
  progress.mutable_progress()->set_k(2);
  progress.mutable_progress()->set_c(1);
  progress.mutable_progress()->set_epoch(1);
  progress.mutable_progress()->set_final_training(true);
  call->callbacks.on_event(progress);
  v1::EvaluateEvent epoch;
  epoch.mutable_epoch()->set_epoch(1);
  epoch.mutable_epoch()->set_validation_accuracy(0.7);
  call->callbacks.on_event(epoch);
  auto events = h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended);
  ASSERT_TRUE(events.ok());
  int final_progress = 0;
  for (const auto& e : *events) final_progress += e.has_progress() && e.progress().final_training();
  EXPECT_EQ(final_progress, 2) << "the batch progress and the epoch end";
  EXPECT_EQ(h.core->GetJob(job->id())->final_training().epochs_size(), 1);

  FakeConnector::CompleteFinal(call, kWinnerFlash, /*with_test=*/true);
  auto done = h.core->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error();
  const v1::FinalTraining& ft = done->final_training();
  EXPECT_EQ(ft.state(), v1::CANDIDATE_STATE_DONE);
  EXPECT_EQ(ft.k(), 2);
  EXPECT_EQ(ft.c(), 1);
  EXPECT_EQ(ft.best_epoch(), 2);
  EXPECT_DOUBLE_EQ(ft.best_validation_accuracy(), 0.75);
  EXPECT_DOUBLE_EQ(ft.quantized_validation_accuracy(), 0.74);
  EXPECT_TRUE(ft.has_test_accuracy());
  EXPECT_DOUBLE_EQ(ft.float_test_accuracy(), 0.72);
  EXPECT_DOUBLE_EQ(ft.quantized_test_accuracy(), 0.71);
  EXPECT_EQ(ft.flash_bytes(), kWinnerFlash);
  EXPECT_EQ(ft.ram_bytes(), 4000);
  EXPECT_EQ(ft.epochs_size(), 3);
  EXPECT_THAT(Names(*done),
              UnorderedElementsAre("model.tflite", "model.h", "report.json", "search-path.svg"));
  auto listed = h.core->ListArtifacts(job->id());
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 4u);
  for (const auto& a : done->artifacts()) {
    auto bytes = h.core->ReadArtifact(job->id(), a.name(), 0, 1 << 30);
    ASSERT_TRUE(bytes.ok()) << a.name() << ": " << bytes.status();
    EXPECT_EQ(static_cast<int64_t>(bytes->size()), a.size_bytes()) << a.name();
    EXPECT_EQ(Sha256Hex(*bytes), a.sha256()) << a.name();
    if (a.name() == "model.tflite") {
      EXPECT_EQ(a.size_bytes(), kWinnerFlash);
    }
    if (a.name() == "model.h") {
      EXPECT_THAT(*bytes, HasSubstr("nanonas_stripes_model"));
    }
    if (a.name() == "report.json") {
      EXPECT_THAT(*bytes, HasSubstr("\"final_training\""));
      EXPECT_THAT(*bytes, HasSubstr("SUCCEEDED"));
    }
  }
  auto part = h.core->ReadArtifact(job->id(), "model.tflite", 990, 100);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->size(), 10u);
  auto missing = h.core->ReadArtifact(job->id(), "weights.bin", 0, 10);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("model.tflite"));
  EXPECT_EQ(h.core->ListArtifacts("job-nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(CoordinatorFinalTrainingTest, WithoutATestSetOnlyValidationFiguresAreReported) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(FinalSpec(/*with_test=*/false));
  ASSERT_TRUE(job.ok()) << job.status();
  auto call = RunSearch(h, job->id());
  ASSERT_NE(call, nullptr);
  EXPECT_TRUE(call->request.test_dataset_id().empty());
  FakeConnector::CompleteFinal(call, kWinnerFlash, /*with_test=*/false);
  auto done = h.core->GetJob(job->id());
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error();
  EXPECT_FALSE(done->final_training().has_test_accuracy());
  EXPECT_EQ(done->final_training().float_test_accuracy(), 0);
  EXPECT_DOUBLE_EQ(done->final_training().quantized_validation_accuracy(), 0.74);
}

TEST(CoordinatorFinalTrainingTest, AModelWhoseSizeDiffersFromTheFlashFigureFailsTheJob) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(FinalSpec());
  ASSERT_TRUE(job.ok());
  auto call = RunSearch(h, job->id());
  ASSERT_NE(call, nullptr);
  FakeConnector::CompleteFinal(call, kWinnerFlash + 4, true);
  auto done = h.core->GetJob(job->id());
  EXPECT_EQ(done->state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(done->error(), HasSubstr("1004 bytes"));
  EXPECT_TRUE(done->result().found()) << "the search result is kept";
  EXPECT_TRUE(done->artifacts().empty());
}

TEST(CoordinatorFinalTrainingTest, CancelDuringTheFinalTrainingKeepsTheSearchResult) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(FinalSpec());
  ASSERT_TRUE(job.ok());
  auto call = RunSearch(h, job->id());
  ASSERT_NE(call, nullptr);
  auto cancelled = h.core->CancelJob(job->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_TRUE(call->cancelled) << "the worker's training is stopped";
  FakeConnector::Finish(call, absl::CancelledError("cancelled"));
  auto j = h.core->GetJob(job->id());
  EXPECT_EQ(j->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(j->final_training().state(), v1::CANDIDATE_STATE_CANCELLED);
  EXPECT_TRUE(j->result().found());
  EXPECT_EQ(j->result().k(), 2);
  EXPECT_EQ(j->result().c(), 1);
  EXPECT_TRUE(h.connector.Open().empty());
}

TEST(CoordinatorFinalTrainingTest, ALostWorkerIsReplacedThenTheJobFailsAfterBoundedAttempts) {
  Harness h(nullptr, nullptr, /*max_attempts=*/2);
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(FinalSpec());
  ASSERT_TRUE(job.ok());
  auto call = RunSearch(h, job->id());
  ASSERT_NE(call, nullptr);
  h.AddWorker("w2");
  FakeConnector::Finish(call, absl::UnavailableError("connection reset"));
  auto open = h.connector.Open();
  ASSERT_EQ(open.size(), 1u) << "re-dispatched";
  EXPECT_TRUE(open[0]->request.final_training());
  EXPECT_EQ(open[0]->worker.id(), "w2");
  auto j = h.core->GetJob(job->id());
  EXPECT_EQ(j->final_training().attempts(), 2);
  EXPECT_EQ(j->state(), v1::JOB_STATE_RUNNING);
  FakeConnector::Finish(open[0], absl::UnavailableError("connection reset"));
  j = h.core->GetJob(job->id());
  EXPECT_EQ(j->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(j->final_training().state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_THAT(j->error(), HasSubstr("lost 2 times"));
  EXPECT_TRUE(j->result().found());
}

TEST(CoordinatorFinalTrainingTest, ASilentWorkerDuringTheFinalTrainingIsReplaced) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(FinalSpec());
  ASSERT_TRUE(job.ok());
  auto call = RunSearch(h, job->id());
  ASSERT_NE(call, nullptr);
  h.AddWorker("w2");
  h.now += absl::Milliseconds(2000);
  ASSERT_TRUE(h.core
                  ->Heartbeat([] {
                    v1::HeartbeatRequest r;
                    r.set_worker_id("w2");
                    return r;
                  }())
                  .known());
  h.now += absl::Milliseconds(1500);  // w1 silent for 3.5 s
  h.core->Tick();
  EXPECT_TRUE(call->cancelled);
  auto open = h.connector.Open();
  std::shared_ptr<FakeConnector::Call> again;
  for (const auto& c : open) {
    if (c != call) again = c;
  }
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->worker.id(), "w2");
  EXPECT_TRUE(again->request.final_training());
  FakeConnector::Finish(call, absl::CancelledError("gone"));  // the old stream ends: ignored
  FakeConnector::CompleteFinal(again, kWinnerFlash, true);
  EXPECT_EQ(h.core->GetJob(job->id())->state(), v1::JOB_STATE_SUCCEEDED);
}

TEST(CoordinatorFinalTrainingTest, ARestartDuringTheFinalTrainingResumesItWithoutTheSearch) {
  MemoryStore store;
  std::string job_id;
  {
    Harness first(&store);
    first.AddWorker("w1");
    auto job = first.core->SubmitJob(FinalSpec());
    ASSERT_TRUE(job.ok());
    job_id = job->id();
    ASSERT_NE(RunSearch(first, job_id), nullptr);
    first.Crash();
  }
  Harness second(&store);
  ASSERT_TRUE(second.core->Recover().ok());
  auto resumed = second.core->GetJob(job_id);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(resumed->final_training().state(), v1::CANDIDATE_STATE_PENDING);
  second.AddWorker("w2");
  auto open = second.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_TRUE(open[0]->request.final_training()) << "the search is not re-run";
  EXPECT_EQ(second.connector.calls.size(), 1u);
  EXPECT_EQ(open[0]->request.k(), 2);
  FakeConnector::CompleteFinal(open[0], kWinnerFlash, true);
  auto done = second.core->GetJob(job_id);
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error();
  EXPECT_EQ(done->final_training().attempts(), 2);
  EXPECT_EQ(done->artifacts_size(), 4);
  // The artifacts are in the store's record too.
  auto jobs = store.LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].artifacts_size(), 4);
}

TEST(CoordinatorFinalTrainingTest, SkipEndsAfterTheSearchWithTheReportOnly) {
  Harness h;
  h.AddWorker("w1");
  v1::JobSpec spec = FinalSpec();
  spec.mutable_final_training()->set_skip(true);
  auto job = h.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(RunSearch(h, job->id()), nullptr);
  auto done = h.core->GetJob(job->id());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done->final_training().state(), v1::CANDIDATE_STATE_UNSPECIFIED);
  for (const auto& c : h.connector.calls) EXPECT_FALSE(c->request.final_training());
  EXPECT_THAT(Names(*done), UnorderedElementsAre("report.json", "search-path.svg"));
}

TEST(CoordinatorFinalTrainingTest, TheFinalTrainingTrainsWithTheFreeSlotsOfItsWorker) {
  Harness h;
  h.AddWorker("w1", /*slots=*/4);
  auto job = h.core->SubmitJob(FinalSpec());
  ASSERT_TRUE(job.ok()) << job.status();
  auto call = RunSearch(h, job->id());
  ASSERT_NE(call, nullptr);
  for (const auto& c : h.connector.calls) {
    if (!c->request.final_training()) EXPECT_EQ(c->request.threads(), 1) << "a candidate";
  }
  EXPECT_EQ(call->request.threads(), 4) << "the job's last run takes the idle slots";
  auto running = h.core->GetJob(job->id());
  EXPECT_EQ(running->final_training().threads(), 4);
  // The worker is full while it trains: a second job's candidate waits.
  auto other = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(h.connector.Open().size(), 1u);
  EXPECT_EQ(h.core->QueueDepth(), 1);
  FakeConnector::CompleteFinal(call, kWinnerFlash, true);
  EXPECT_EQ(h.core->GetJob(job->id())->state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(h.connector.Open().size(), 1u) << "the slots came back";
  EXPECT_EQ(h.connector.Open()[0]->request.job_id(), other->id());
}

TEST(CoordinatorFinalTrainingTest, SubmitChecksTheTestSetAndTheCalibrationImages) {
  Harness h;
  v1::JobSpec other = FinalSpec();
  other.set_test_dataset_id("sha256:" + Hex64('c'));
  auto r = h.core->SubmitJob(other);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("cats"));
  v1::JobSpec unknown = FinalSpec();
  unknown.set_test_dataset_id("sha256:" + Hex64('7'));
  EXPECT_EQ(h.core->SubmitJob(unknown).status().code(), absl::StatusCode::kNotFound);
  v1::JobSpec few = FinalSpec();
  few.set_validation_split(0.6);  // 300 images leave 120 for training
  r = h.core->SubmitJob(few);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("150"));
  few.mutable_final_training()->set_skip(true);
  EXPECT_TRUE(h.core->SubmitJob(few).ok()) << "without a final training nothing is quantized";
  v1::JobSpec negative = FinalSpec();
  negative.mutable_final_training()->set_epochs(-1);
  EXPECT_EQ(h.core->SubmitJob(negative).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ArtifactStoreTest, WritesReadsAndRefusesPathsOutsideItsFolder) {
  const std::string root =
      (std::filesystem::temp_directory_path() / absl::StrCat("nanonas-artifact-store-", getpid()))
          .string();
  ArtifactStore store(root);
  auto a = store.Write("job-1", "model.tflite", "abc");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->size_bytes(), 3);
  EXPECT_EQ(a->sha256(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(*store.Read("job-1", "model.tflite", 1, 10), "bc");
  EXPECT_EQ(*store.Read("job-1", "model.tflite", 3, 10), "");
  EXPECT_FALSE(std::filesystem::exists(store.PathOf("job-1", "model.tflite") + ".tmp"));
  EXPECT_EQ(store.Read("job-1", "other", 0, 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Write("job-1", "../escape", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Write("..", "x", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Read("job-1", "a/b", 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace nanonas::coordinator::testing
