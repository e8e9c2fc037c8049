// The coordinator over the real SQLite store: a job interrupted mid-search (the process "dies"
// with a candidate running) resumes from the file and ends as an uninterrupted run does.
#include "server/coordinator/job_store_adapter.h"

#include <filesystem>
#include <map>

#include "gtest/gtest.h"
#include "server/store/sqlite_job_store.h"
#include "tests/support/coordinator_fakes.h"

namespace nanonas::coordinator::testing {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<JobStoreAdapter> Open(const std::string& path) {
  auto store = OpenSqliteJobStore(path);
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return std::make_unique<JobStoreAdapter>(std::move(store).value());
}

const std::map<std::pair<int, int>, double>& Accuracy() {
  static const auto* t = new std::map<std::pair<int, int>, double>{
      {{1, 0}, 0.50}, {{1, 1}, 0.60}, {{1, 2}, 0.55}, {{2, 0}, 0.62},
      {{2, 1}, 0.58}, {{3, 0}, 0.61}, {{3, 1}, 0.60}};
  return *t;
}

// Finishes open calls with Accuracy() until the job ends or `max_steps` calls were finished.
int Drive(Harness& h, const std::string& job_id, int max_steps) {
  int steps = 0;
  while (steps < max_steps) {
    auto job = h.core->GetJob(job_id);
    if (!job.ok() || job->state() != v1::JOB_STATE_RUNNING) break;
    auto open = h.connector.Open();
    if (open.size() != 1) break;
    FakeConnector::Complete(open[0], Accuracy().at({open[0]->request.k(), open[0]->request.c()}));
    ++steps;
  }
  return steps;
}

TEST(JobStoreAdapterTest, SqliteRestartResumesAndMatchesAnUninterruptedRun) {
  const std::string dir = ::testing::TempDir() + "/adapter-" + std::to_string(::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);

  // Uninterrupted reference run (in memory).
  v1::Job reference;
  {
    Harness h;
    h.AddWorker("w");
    auto job = h.core->SubmitJob(GoodSpec());
    ASSERT_TRUE(job.ok());
    Drive(h, job->id(), 100);
    reference = *h.core->GetJob(job->id());
    ASSERT_EQ(reference.state(), v1::JOB_STATE_SUCCEEDED);
  }

  std::string job_id;
  {
    auto store = Open(dir + "/nanonas.db");
    ASSERT_NE(store, nullptr);
    Harness first(store.get());
    first.AddWorker("w");
    auto job = first.core->SubmitJob(GoodSpec());
    ASSERT_TRUE(job.ok()) << job.status();
    job_id = job->id();
    ASSERT_EQ(Drive(first, job_id, 2), 2);  // (1,0) and (1,1) done, (1,2) running
    first.Crash();
  }
  auto store = Open(dir + "/nanonas.db");
  ASSERT_NE(store, nullptr);
  Harness second(store.get());
  ASSERT_TRUE(second.core->Recover().ok());
  second.AddWorker("w2");
  auto open = second.connector.Open();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0]->request.k(), 1);
  EXPECT_EQ(open[0]->request.c(), 2);
  Drive(second, job_id, 100);
  auto resumed = second.core->GetJob(job_id);
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(resumed->result().k(), reference.result().k());
  EXPECT_EQ(resumed->result().c(), reference.result().c());
  EXPECT_EQ(resumed->result().validation_accuracy(), reference.result().validation_accuracy());
  ASSERT_EQ(resumed->candidates_size(), reference.candidates_size());
  for (int i = 0; i < resumed->candidates_size(); ++i) {
    EXPECT_EQ(resumed->candidates(i).k(), reference.candidates(i).k());
    EXPECT_EQ(resumed->candidates(i).c(), reference.candidates(i).c());
    EXPECT_EQ(resumed->candidates(i).state(), reference.candidates(i).state());
  }
  EXPECT_EQ(second.connector.calls.size(), 5u) << "only (1,2) and later candidates ran";
  EXPECT_EQ(resumed->candidates(2).attempts(), 2) << "the interrupted dispatch counts";
  auto events = store->LoadEvents(job_id, 0);
  ASSERT_TRUE(events.ok());
  ASSERT_FALSE(events->empty());
  for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].sequence(), int64_t(i) + 1);
  EXPECT_EQ(events->back().job_state(), v1::JOB_STATE_SUCCEEDED);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace nanonas::coordinator::testing
