// The coordinator core with an in-memory store and a fake worker pool: no threads, no gRPC, a
// manual clock. Evaluations are finished by the test with scripted accuracies.
#include "server/coordinator/coordinator.h"

#include <map>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::coordinator::testing {
namespace {

using ::testing::HasSubstr;

// k=1 peaks at c=1; k=2 improves to c=1 and ties at c=2 (a tie stops); k=2's best beats k=1's;
// k=3's best row (c=2, 0.69) is worse than k=2's (0.70): the search returns (2, 1).
std::map<std::pair<int, int>, double> Table() {
  return {{{1, 0}, 0.50}, {{1, 1}, 0.60}, {{1, 2}, 0.55}, {{2, 0}, 0.62}, {{2, 1}, 0.70},
          {{2, 2}, 0.70}, {{3, 0}, 0.65}, {{3, 1}, 0.68}, {{3, 2}, 0.69}, {{3, 3}, 0.66}};
}

// Finishes open evaluations with the table until the job ends (bounded).
void RunToEnd(Harness& h, const std::string& job_id,
              const std::map<std::pair<int, int>, double>& table) {
  for (int guard = 0; guard < 100; ++guard) {
    auto job = h.core->GetJob(job_id);
    ASSERT_TRUE(job.ok());
    if (job->state() != v1::JOB_STATE_RUNNING) return;
    auto open = h.connector.Open();
    ASSERT_EQ(open.size(), 1u) << "one candidate on the way per job";
    const auto& req = open[0]->request;
    auto it = table.find({req.k(), req.c()});
    ASSERT_NE(it, table.end()) << "unexpected candidate (" << req.k() << "," << req.c() << ")";
    FakeConnector::Complete(open[0], it->second);
  }
  FAIL() << "job did not end";
}

std::vector<std::pair<int, int>> PathOf(const v1::Job& job) {
  std::vector<std::pair<int, int>> out;
  for (const auto& c : job.candidates()) out.emplace_back(c.k(), c.c());
  return out;
}

TEST(CoordinatorTest, RunsAFullSearchOnScriptedResults) {
  Harness h;
  h.AddWorker("w1");
  auto submitted = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->state(), v1::JOB_STATE_QUEUED) << "answered before the preparation";
  auto job = h.core->GetJob(submitted->id());  // prepared (the fake prepares inside Start)
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(job->num_classes(), 2);
  EXPECT_EQ(job->evaluation_dataset_id(), Hex64('d'));
  RunToEnd(h, job->id(), Table());

  auto done = h.core->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error();
  EXPECT_TRUE(done->result().found());
  EXPECT_EQ(done->result().k(), 2);
  EXPECT_EQ(done->result().c(), 1);
  EXPECT_DOUBLE_EQ(done->result().validation_accuracy(), 0.70);
  EXPECT_EQ(done->result().ram_bytes(), 4000);  // 1000 * k * (c + 1)
  EXPECT_FALSE(done->result().stop_reason().empty());
  const std::vector<std::pair<int, int>> expected = {{1, 0}, {1, 1}, {1, 2}, {2, 0}, {2, 1},
                                                     {2, 2}, {3, 0}, {3, 1}, {3, 2}, {3, 3}};
  EXPECT_EQ(PathOf(*done), expected);
  for (const auto& c : done->candidates()) {
    EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_DONE);
    EXPECT_EQ(c.worker(), "w1");
    EXPECT_EQ(c.attempts(), 1);
    EXPECT_EQ(c.peak_memory_bytes(), 12345678);
    EXPECT_DOUBLE_EQ(c.duration_seconds(), 1.5);
    EXPECT_EQ(c.epochs_size(), 1);
  }
  EXPECT_EQ(h.connector.calls.size(), expected.size()) << "each candidate trained once";
  // The request carries the job's normalised settings.
  const auto& req = h.connector.calls[0]->request;
  EXPECT_EQ(req.dataset_id(), Hex64('d'));
  EXPECT_EQ(req.settings().epochs(), 3);
  EXPECT_EQ(req.settings().batch_size(), 16);
  EXPECT_EQ(req.variant(), "2023");
  EXPECT_DOUBLE_EQ(req.validation_split(), 0.3);
}

TEST(CoordinatorTest, InfeasibleCandidatesAreRecordedWithTheLimitAndNeverTrained) {
  Harness h;
  h.AddWorker("w1");
  v1::JobSpec spec = GoodSpec();
  spec.mutable_constraints()->set_ram_bytes(4500);  // (1,4) needs 5000, (2,2) needs 6000
  auto job = h.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  RunToEnd(
      h, job->id(),
      {{{1, 0}, 0.5}, {{1, 1}, 0.6}, {{1, 2}, 0.7}, {{1, 3}, 0.8}, {{2, 0}, 0.5}, {{2, 1}, 0.6}});
  auto done = h.core->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done->result().k(), 1);
  EXPECT_EQ(done->result().c(), 3);
  ASSERT_EQ(done->candidates_size(), 8);
  const v1::Candidate& bad = done->candidates(4);
  EXPECT_EQ(bad.k(), 1);
  EXPECT_EQ(bad.c(), 4);
  EXPECT_EQ(bad.state(), v1::CANDIDATE_STATE_INFEASIBLE);
  ASSERT_EQ(bad.violations_size(), 1);
  EXPECT_EQ(bad.violations(0).resource(), "ram_bytes");
  EXPECT_EQ(bad.violations(0).value(), 5000);
  EXPECT_EQ(bad.violations(0).limit(), 4500);
  EXPECT_EQ(bad.violations(0).excess(), 500);
  EXPECT_THAT(bad.error(), HasSubstr("ram_bytes"));
  EXPECT_EQ(done->candidates(7).state(), v1::CANDIDATE_STATE_INFEASIBLE);
  EXPECT_EQ(h.connector.calls.size(), 6u) << "infeasible candidates are never dispatched";
  for (const auto& call : h.connector.calls) {
    EXPECT_FALSE(call->request.k() == 1 && call->request.c() == 4);
  }
}

TEST(CoordinatorTest, HostInfeasibleCandidateEndsItsRowWithoutTraining) {
  Harness h;
  h.host_bytes_per_k = 1000;
  h.AddWorker("w1");
  v1::JobSpec spec = GoodSpec();
  spec.mutable_constraints()->set_host_memory_bytes(1500);  // k = 2 needs 2000
  auto job = h.core->SubmitJob(spec);
  ASSERT_TRUE(job.ok()) << job.status();
  RunToEnd(h, job->id(), {{{1, 0}, 0.5}, {{1, 1}, 0.4}});
  auto done = h.core->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done->result().k(), 1);
  EXPECT_EQ(done->result().c(), 0);
  ASSERT_EQ(done->candidates_size(), 3);
  const v1::Candidate& host = done->candidates(2);
  EXPECT_EQ(host.k(), 2);
  EXPECT_EQ(host.state(), v1::CANDIDATE_STATE_HOST_INFEASIBLE);
  ASSERT_EQ(host.violations_size(), 1);
  EXPECT_EQ(host.violations(0).resource(), "host_memory_bytes");
  EXPECT_EQ(host.violations(0).excess(), 500);
  EXPECT_EQ(h.connector.calls.size(), 2u);
}

TEST(CoordinatorTest, LostWorkerIsRedispatchedThenFailedAfterBoundedAttempts) {
  Harness h(nullptr, nullptr, /*max_attempts=*/3);
  h.AddWorker("a");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok()) << job.status();
  FakeConnector::Complete(h.connector.Open()[0], 0.5);  // (1,0)

  // (1,1), attempt 1 on "a": the stream breaks. The worker is dropped, the candidate waits.
  h.AddWorker("b");
  auto open = h.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  const std::string first_worker = open[0]->worker.id();
  FakeConnector::Finish(open[0], absl::UnavailableError("connection reset"));
  EXPECT_EQ(h.core->NumWorkers(), 1);
  open = h.connector.Open();
  ASSERT_EQ(open.size(), 1u) << "re-dispatched to the other worker";
  EXPECT_NE(open[0]->worker.id(), first_worker);
  EXPECT_EQ(open[0]->request.k(), 1);
  EXPECT_EQ(open[0]->request.c(), 1);

  // Attempt 2: the worker stops heartbeating; after the timeout Tick drops it and cancels the RPC.
  h.now += absl::Seconds(4);
  h.core->Tick();
  EXPECT_TRUE(open[0]->cancelled);
  EXPECT_EQ(h.core->NumWorkers(), 0);
  EXPECT_EQ(h.core->QueueDepth(), 1);
  auto mid = h.core->GetJob(job->id());
  ASSERT_TRUE(mid.ok());
  EXPECT_EQ(mid->candidates(1).state(), v1::CANDIDATE_STATE_PENDING);
  EXPECT_EQ(mid->candidates(1).attempts(), 2);
  FakeConnector::Finish(open[0], absl::CancelledError("cancelled"));  // late: ignored

  // Attempt 3 on a new worker: lost again -> FAILED with the reason; the row ends, k = 2 starts.
  h.AddWorker("c");
  open = h.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  FakeConnector::Finish(open[0], absl::UnavailableError("worker c vanished"));
  auto after = h.core->GetJob(job->id());
  ASSERT_TRUE(after.ok());
  const v1::Candidate& failed = after->candidates(1);
  EXPECT_EQ(failed.state(), v1::CANDIDATE_STATE_FAILED);
  EXPECT_EQ(failed.attempts(), 3);
  EXPECT_THAT(failed.error(), HasSubstr("3 times"));
  EXPECT_THAT(failed.error(), HasSubstr("worker c vanished"));
  ASSERT_EQ(after->candidates_size(), 3);
  EXPECT_EQ(after->candidates(2).k(), 2);
  EXPECT_EQ(after->candidates(2).c(), 0);
  EXPECT_EQ(after->state(), v1::JOB_STATE_RUNNING);
}

TEST(CoordinatorTest, HeartbeatsKeepAWorkerAndUnknownWorkersAreToldToRegister) {
  Harness h;
  h.AddWorker("w1");
  for (int i = 0; i < 5; ++i) {
    h.now += absl::Seconds(2);
    v1::HeartbeatRequest hb;
    hb.set_worker_id("w1");
    EXPECT_TRUE(h.core->Heartbeat(hb).known());
    h.core->Tick();
  }
  EXPECT_EQ(h.core->NumWorkers(), 1);
  v1::HeartbeatRequest stranger;
  stranger.set_worker_id("nobody");
  EXPECT_FALSE(h.core->Heartbeat(stranger).known());
  EXPECT_TRUE(h.core->LeaveWorker("w1").ok());
  EXPECT_EQ(h.core->NumWorkers(), 0);
  EXPECT_EQ(h.core->LeaveWorker("w1").code(), absl::StatusCode::kNotFound);
}

TEST(CoordinatorTest, RestartFromTheStoreResumesWithoutRerunningFinishedCandidates) {
  MemoryStore store;
  std::string job_id;
  std::vector<std::pair<int, int>> trained_before;
  {
    Harness first(&store);
    first.AddWorker("w1");
    auto job = first.core->SubmitJob(GoodSpec());
    ASSERT_TRUE(job.ok()) << job.status();
    job_id = job->id();
    const auto table = Table();
    for (int i = 0; i < 4; ++i) {  // (1,0) (1,1) (1,2) (2,0) finish
      auto open = first.connector.Open();
      ASSERT_EQ(open.size(), 1u);
      trained_before.emplace_back(open[0]->request.k(), open[0]->request.c());
      FakeConnector::Complete(open[0], table.at({open[0]->request.k(), open[0]->request.c()}));
    }
    ASSERT_EQ(first.connector.Open().size(), 1u);  // (2,1) is running when the process dies
    first.Crash();
  }
  Harness second(&store);
  ASSERT_TRUE(second.core->Recover().ok());
  auto resumed = second.core->GetJob(job_id);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->state(), v1::JOB_STATE_RUNNING);
  ASSERT_EQ(resumed->candidates_size(), 5);
  EXPECT_EQ(resumed->candidates(4).state(), v1::CANDIDATE_STATE_PENDING);
  second.AddWorker("w2");
  auto open = second.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0]->request.k(), 2);
  EXPECT_EQ(open[0]->request.c(), 1);
  RunToEnd(second, job_id, Table());
  auto done = second.core->GetJob(job_id);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done->result().k(), 2);
  EXPECT_EQ(done->result().c(), 1);
  EXPECT_EQ(done->candidates_size(), 10);
  for (const auto& call : second.connector.calls) {
    for (const auto& kc : trained_before) {
      EXPECT_FALSE(call->request.k() == kc.first && call->request.c() == kc.second)
          << "(" << kc.first << "," << kc.second << ") ran again after the restart";
    }
  }
  EXPECT_EQ(second.connector.calls.size(), 6u);
  // Events continue the sequence of the first process.
  auto events = store.LoadEvents(job_id, 0);
  ASSERT_TRUE(events.ok());
  for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].sequence(), int64_t(i) + 1);
}

TEST(CoordinatorTest, RecoverKeepsFinishedJobs) {
  MemoryStore store;
  std::string job_id;
  {
    Harness first(&store);
    first.AddWorker("w1");
    auto job = first.core->SubmitJob(GoodSpec());
    ASSERT_TRUE(job.ok());
    job_id = job->id();
    RunToEnd(first, job_id, Table());
  }
  Harness second(&store);
  ASSERT_TRUE(second.core->Recover().ok());
  auto job = second.core->GetJob(job_id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->result().k(), 2);
  second.AddWorker("w2");
  EXPECT_TRUE(second.connector.calls.empty());
}

struct BadSpecCase {
  const char* name;
  std::function<void(v1::JobSpec*)> mutate;
  absl::StatusCode code;
  const char* message;
};

TEST(CoordinatorTest, ValidationErrorsHaveTheirCodesAndSayWhatToFix) {
  const BadSpecCase cases[] = {
      {"no dataset", [](v1::JobSpec* s) { s->clear_dataset_id(); },
       absl::StatusCode::kInvalidArgument, "dataset_id is empty"},
      {"unknown dataset", [](v1::JobSpec* s) { s->set_dataset_id("sha256:" + Hex64('f')); },
       absl::StatusCode::kNotFound, "unknown"},
      {"zero limits",
       [](v1::JobSpec* s) {
         s->mutable_constraints()->set_ram_bytes(0);
         s->mutable_constraints()->set_flash_bytes(0);
       },
       absl::StatusCode::kInvalidArgument, "ram_bytes and/or flash_bytes"},
      {"negative ram", [](v1::JobSpec* s) { s->mutable_constraints()->set_ram_bytes(-5); },
       absl::StatusCode::kInvalidArgument, "constraints.ram_bytes is -5"},
      {"negative macc", [](v1::JobSpec* s) { s->mutable_constraints()->set_macc(-1); },
       absl::StatusCode::kInvalidArgument, "constraints.macc"},
      {"0x0 input",
       [](v1::JobSpec* s) {
         s->mutable_input()->set_height(0);
         s->mutable_input()->set_width(0);
       },
       absl::StatusCode::kInvalidArgument, "positive height and width"},
      {"2 channels", [](v1::JobSpec* s) { s->mutable_input()->set_channels(2); },
       absl::StatusCode::kInvalidArgument, "use 1 (grayscale) or 3 (RGB)"},
      {"unknown variant", [](v1::JobSpec* s) { s->set_variant("2025"); },
       absl::StatusCode::kInvalidArgument, "variant '2025' is unknown"},
      {"bad split", [](v1::JobSpec* s) { s->set_validation_split(1.5); },
       absl::StatusCode::kInvalidArgument, "validation_split"},
      {"one class", [](v1::JobSpec* s) { s->set_dataset_id("sha256:" + Hex64('1')); },
       absl::StatusCode::kInvalidArgument, "at least 2"},
      {"negative epochs", [](v1::JobSpec* s) { s->mutable_evaluation()->set_epochs(-1); },
       absl::StatusCode::kInvalidArgument, "epochs"},
  };
  Harness h;
  h.AddWorker("w1");
  for (const auto& c : cases) {
    v1::JobSpec spec = GoodSpec();
    c.mutate(&spec);
    auto job = h.core->SubmitJob(spec);
    EXPECT_EQ(job.status().code(), c.code) << c.name << ": " << job.status();
    EXPECT_THAT(std::string(job.status().message()), HasSubstr(c.message)) << c.name;
  }
  auto none = h.core->ListJobs({}, 0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "rejected specs leave no job behind";
  EXPECT_TRUE(h.connector.calls.empty());
  // And the core still takes a good job.
  EXPECT_TRUE(h.core->SubmitJob(GoodSpec()).ok());
}

TEST(CoordinatorTest, CancelStopsTheWorkersTrainingAndMarksTheJobCancelled) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  auto open = h.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  auto cancelled = h.core->CancelJob(job->id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_TRUE(open[0]->cancelled) << "the Evaluate RPC is cancelled";
  EXPECT_EQ(cancelled->state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(cancelled->candidates(0).state(), v1::CANDIDATE_STATE_CANCELLED);
  FakeConnector::Finish(open[0], absl::CancelledError("cancelled"));
  EXPECT_EQ(h.core->RunningEvaluations(), 0);
  EXPECT_EQ(h.core->CancelJob(job->id()).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(h.core->CancelJob("job-missing").status().code(), absl::StatusCode::kNotFound);
  // The freed worker takes the next job.
  auto next = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(h.connector.Open().size(), 1u);
}

TEST(CoordinatorTest, JobsShareTheWorkerPoolOldestFirst) {
  Harness h;
  auto a = h.core->SubmitJob(GoodSpec());
  auto b = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(h.core->QueueDepth(), 2);
  h.AddWorker("w1", /*slots=*/1);
  ASSERT_EQ(h.connector.Open().size(), 1u);
  EXPECT_EQ(h.connector.Open()[0]->request.job_id(), a->id());
  h.AddWorker("w2", /*slots=*/1);
  ASSERT_EQ(h.connector.Open().size(), 2u);
  EXPECT_EQ(h.connector.Open()[1]->request.job_id(), b->id());
  EXPECT_EQ(h.core->QueueDepth(), 0);
}

// Among workers with as many free slots, the one sent work longest ago gets the next evaluation:
// equal workers take turns, and a worker that joins (here one whose id sorts last) is served
// first instead of idling behind the others.
TEST(CoordinatorTest, EqualWorkersTakeTurnsAndANewcomerIsServedFirst) {
  Harness h;
  h.AddWorker("w1");
  h.AddWorker("w2");
  auto a = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(a.ok()) << a.status();
  RunToEnd(h, a->id(), Table());
  auto done = h.core->GetJob(a->id());
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->candidates_size(), 10);
  for (int i = 0; i < done->candidates_size(); ++i) {
    EXPECT_EQ(done->candidates(i).worker(), i % 2 == 0 ? "w1" : "w2") << "candidate " << i;
  }
  h.AddWorker("zz-new");
  auto b = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(b.ok()) << b.status();
  const auto open = h.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0]->worker.id(), "zz-new");
}

TEST(CoordinatorTest, WatchGivesASnapshotThenEventsAndResumesFromACursor) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  Coordinator::WatchCursor cursor;
  bool ended = false;
  auto first = h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->empty());
  EXPECT_TRUE((*first)[0].has_job()) << "the first event is a snapshot";
  EXPECT_EQ((*first)[0].job().id(), job->id());
  const int64_t seen = cursor.sequence;
  EXPECT_GT(seen, 0);

  // Progress is live, the finished candidate is a persisted event.
  auto open = h.connector.Open();
  v1::EvaluateEvent progress;
  progress.mutable_progress()->set_k(1);
  progress.mutable_progress()->set_batch(7);
  open[0]->callbacks.on_event(progress);
  FakeConnector::Complete(open[0], 0.5);
  auto next = h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended);
  ASSERT_TRUE(next.ok());
  bool saw_progress = false, saw_done = false;
  for (size_t i = 1; i < next->size(); ++i) {
    EXPECT_GE((*next)[i].sequence(), (*next)[i - 1].sequence())
        << "events in the order they happened";
  }
  ASSERT_GE(next->size(), 2u);
  EXPECT_TRUE((*next)[0].has_progress()) << "the progress came before the result";
  for (const auto& ev : *next) {
    if (ev.has_progress() && ev.progress().batch() == 7) saw_progress = true;
    if (ev.has_candidate() && ev.candidate().state() == v1::CANDIDATE_STATE_DONE) saw_done = true;
  }
  EXPECT_TRUE(saw_progress);
  EXPECT_TRUE(saw_done);
  EXPECT_FALSE(ended);

  // A reconnect after `seen` replays the persisted events after it, without the progress.
  Coordinator::WatchCursor resume;
  resume.sequence = seen;
  auto replay = h.core->NextEvents(job->id(), &resume, absl::ZeroDuration(), &ended);
  ASSERT_TRUE(replay.ok());
  ASSERT_GE(replay->size(), 2u);
  EXPECT_TRUE((*replay)[0].has_job());
  int64_t last = seen;
  for (size_t i = 1; i < replay->size(); ++i) {
    EXPECT_FALSE((*replay)[i].has_progress());
    EXPECT_EQ((*replay)[i].sequence(), last + 1);
    last = (*replay)[i].sequence();
  }
  EXPECT_EQ(h.core->NextEvents("job-x", &resume, absl::ZeroDuration(), &ended).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CoordinatorTest, WatchEndsWhenTheJobEnds) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  RunToEnd(h, job->id(), Table());
  Coordinator::WatchCursor cursor;
  bool ended = false;
  auto events = h.core->NextEvents(job->id(), &cursor, absl::ZeroDuration(), &ended);
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(ended);
  EXPECT_EQ((*events)[0].job().state(), v1::JOB_STATE_SUCCEEDED);
}

TEST(CoordinatorTest, ListJobsFiltersByStateNewestFirst) {
  Harness h;
  h.AddWorker("w1");
  auto a = h.core->SubmitJob(GoodSpec());
  auto b = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(h.core->CancelJob(a->id()).ok());
  auto all = h.core->ListJobs({}, 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id(), b->id());
  auto cancelled = h.core->ListJobs({v1::JOB_STATE_CANCELLED}, 0);
  ASSERT_TRUE(cancelled.ok());
  ASSERT_EQ(cancelled->size(), 1u);
  EXPECT_EQ((*cancelled)[0].id(), a->id());
  auto one = h.core->ListJobs({}, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);
}

TEST(CoordinatorTest, RegisterWorkerRejectsMissingIdOrAddress) {
  Harness h;
  v1::WorkerDescription w;
  EXPECT_EQ(h.core->RegisterWorker(w).status().code(), absl::StatusCode::kInvalidArgument);
  w.set_id("x");
  auto r = h.core->RegisterWorker(w);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("address"));
}

TEST(CoordinatorTest, WorkerReportedHostInfeasibleEndsTheRowAndTheWorkerKeepsServing) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  FakeConnector::Complete(h.connector.Open()[0], 0.5);  // (1,0)
  v1::EvaluateResult oom;
  oom.set_state(v1::CANDIDATE_STATE_HOST_INFEASIBLE);
  oom.set_peak_memory_bytes(999);
  oom.set_error("training exceeded the worker's memory budget");
  FakeConnector::Finish(h.connector.Open()[0], oom);  // (1,1)
  auto j = h.core->GetJob(job->id());
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->candidates(1).state(), v1::CANDIDATE_STATE_HOST_INFEASIBLE);
  EXPECT_THAT(j->candidates(1).error(), HasSubstr("memory budget"));
  ASSERT_EQ(j->candidates_size(), 3);
  EXPECT_EQ(j->candidates(2).k(), 2);
  EXPECT_EQ(h.connector.Open().size(), 1u);
  EXPECT_EQ(h.core->NumWorkers(), 1);
}

double AccuracyOr(const std::map<std::pair<int, int>, double>& table, int k, int c) {
  auto it = table.find({k, c});
  return it == table.end() ? 0.3 : it->second;  // candidates off the sequential path
}

TEST(CoordinatorSpeculationTest, IdleWorkersEvaluateAheadAndTheResultEqualsTheSequentialSearch) {
  Harness h(nullptr, nullptr, 3, /*speculate=*/true);
  h.AddWorker("w1");
  h.AddWorker("w2");
  h.AddWorker("w3");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok()) << job.status();
  size_t most_open = 0;
  const auto table = Table();
  for (int guard = 0; guard < 200; ++guard) {
    auto j = h.core->GetJob(job->id());
    ASSERT_TRUE(j.ok());
    if (j->state() != v1::JOB_STATE_RUNNING) break;
    // Cancelled (pruned) speculative calls end as the transport would end them.
    for (const auto& call : h.connector.Open()) {
      if (call->cancelled) FakeConnector::Finish(call, absl::CancelledError("cancelled"));
    }
    auto open = h.connector.Open();
    most_open = std::max(most_open, open.size());
    ASSERT_FALSE(open.empty()) << "running job with nothing dispatched";
    // Finish the newest call first: results arrive out of path order.
    const auto& call = open.back();
    FakeConnector::Complete(call, AccuracyOr(table, call->request.k(), call->request.c()));
  }
  auto done = h.core->GetJob(job->id());
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED) << done->error();
  EXPECT_EQ(done->result().k(), 2);
  EXPECT_EQ(done->result().c(), 1);
  EXPECT_DOUBLE_EQ(done->result().validation_accuracy(), 0.70);
  const std::vector<std::pair<int, int>> expected = {{1, 0}, {1, 1}, {1, 2}, {2, 0}, {2, 1},
                                                     {2, 2}, {3, 0}, {3, 1}, {3, 2}, {3, 3}};
  EXPECT_EQ(PathOf(*done), expected);
  for (const auto& c : done->candidates()) {
    EXPECT_EQ(c.state(), v1::CANDIDATE_STATE_DONE);
    EXPECT_DOUBLE_EQ(c.best_validation_accuracy(), table.at({c.k(), c.c()}));
    EXPECT_EQ(c.attempts(), 1);
    EXPECT_FALSE(c.worker().empty());
  }
  EXPECT_GE(most_open, 2u) << "idle workers were used for speculative evaluations";
  // Every path candidate was trained exactly once (speculative or not).
  std::map<std::pair<int, int>, int> trained;
  for (const auto& call : h.connector.calls) {
    if (!call->cancelled) trained[{call->request.k(), call->request.c()}]++;
  }
  for (const auto& kc : expected) EXPECT_EQ(trained[kc], 1) << kc.first << "," << kc.second;
}

TEST(CoordinatorSpeculationTest, AQueuedCandidateTakesTheSlotOfASpeculativeEvaluation) {
  Harness h(nullptr, nullptr, 3, /*speculate=*/true);
  h.AddWorker("w1");
  h.AddWorker("w2");
  auto a = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(a.ok());
  auto open = h.connector.Open();
  ASSERT_EQ(open.size(), 2u) << "(1,0) and one candidate ahead of time";
  EXPECT_EQ(open[0]->request.k(), 1);
  EXPECT_EQ(open[0]->request.c(), 0);
  const auto speculative = open[1];
  EXPECT_EQ(speculative->request.k(), 1);
  EXPECT_EQ(speculative->request.c(), 1);
  auto b = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(speculative->cancelled) << "the speculative evaluation yields its slot";
  FakeConnector::Finish(speculative, absl::CancelledError("cancelled"));
  open = h.connector.Open();
  ASSERT_EQ(open.size(), 2u);
  EXPECT_EQ(open[1]->request.job_id(), b->id());
  EXPECT_EQ(h.core->QueueDepth(), 0);
}

TEST(CoordinatorSpeculationTest, ACandidateRunningAheadIsAdoptedWhenTheSearchAsksForIt) {
  Harness h(nullptr, nullptr, 3, /*speculate=*/true);
  h.AddWorker("w1");
  h.AddWorker("w2");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  auto open = h.connector.Open();
  ASSERT_EQ(open.size(), 2u);
  const auto ahead = open[1];             // (1,1), still running
  FakeConnector::Complete(open[0], 0.5);  // (1,0) improves: the search asks for (1,1)
  auto j = h.core->GetJob(job->id());
  ASSERT_TRUE(j.ok());
  ASSERT_EQ(j->candidates_size(), 2);
  EXPECT_EQ(j->candidates(1).state(), v1::CANDIDATE_STATE_RUNNING);
  EXPECT_EQ(j->candidates(1).worker(), ahead->worker.id());
  EXPECT_FALSE(ahead->cancelled);
  FakeConnector::Complete(ahead, 0.6);
  j = h.core->GetJob(job->id());
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->candidates(1).state(), v1::CANDIDATE_STATE_DONE);
  EXPECT_DOUBLE_EQ(j->candidates(1).best_validation_accuracy(), 0.6);
  EXPECT_EQ(j->candidates(1).attempts(), 1);
}

TEST(CoordinatorTest, ABusyWorkerIsNotAFailedAttemptAndIsSkippedForAMoment) {
  Harness h;
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok());
  for (int i = 0; i < 5; ++i) {  // more rejections than max_attempts
    auto open = h.connector.Open();
    ASSERT_EQ(open.size(), 1u) << "round " << i;
    FakeConnector::Finish(open[0], absl::ResourceExhaustedError("all 1 evaluation slots busy"));
    EXPECT_TRUE(h.connector.Open().empty()) << "the busy worker is left alone for a moment";
    h.now += absl::Milliseconds(500);
    h.core->Tick();
  }
  auto j = h.core->GetJob(job->id());
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->candidates(0).state(), v1::CANDIDATE_STATE_RUNNING);
  EXPECT_EQ(j->candidates(0).attempts(), 1);
  FakeConnector::Complete(h.connector.Open()[0], 0.5);
  j = h.core->GetJob(job->id());
  EXPECT_EQ(j->candidates(0).state(), v1::CANDIDATE_STATE_DONE);
}

TEST(CoordinatorTest, ListWorkersShowsWhatRunsOnEachWorker) {
  Harness h;
  h.AddWorker("w2", 2);
  h.AddWorker("w1");
  auto job = h.core->SubmitJob(GoodSpec());
  ASSERT_TRUE(job.ok()) << job.status();
  h.core->Tick();
  h.now += absl::Seconds(3);
  auto workers = h.core->ListWorkers();
  ASSERT_EQ(workers.size(), 2u);
  EXPECT_EQ(workers[0].worker.desc.id(), "w1") << "in id order";
  EXPECT_EQ(workers[1].worker.desc.slots(), 2);
  int running = 0;
  for (const auto& w : workers) {
    running += w.worker.running;
    for (const auto& e : w.evaluations) {
      EXPECT_EQ(e.job_id, job->id());
      EXPECT_EQ(e.k, 1);
      EXPECT_EQ(e.c, 0);
      EXPECT_FALSE(e.final_training);
      EXPECT_FALSE(e.speculative);
      EXPECT_EQ(h.now - e.started, absl::Seconds(3));
    }
  }
  EXPECT_EQ(running, 1) << "one candidate on the way";
  EXPECT_EQ(h.core->CurrentTime(), h.now);
}

}  // namespace
}  // namespace nanonas::coordinator::testing
