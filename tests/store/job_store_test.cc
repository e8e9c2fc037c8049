// The JobStore contract, run against both implementations.
#include "server/store/job_store.h"

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_job_store.h"
#include "tests/support/job_store_helpers.h"
#include "tests/support/memory_job_store.h"

namespace nanonas {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;

MATCHER_P(EqualsProto, expected, "") { return MessageDifferencer::Equals(arg, expected); }

v1::Job MakeJob(const std::string& id, v1::JobState state = v1::JOB_STATE_QUEUED) {
  v1::Job job;
  job.set_id(id);
  job.set_state(state);
  job.mutable_spec()->set_name("name of " + id);
  job.mutable_spec()->set_dataset_id("sha256:abc");
  job.mutable_spec()->mutable_input()->set_height(50);
  job.mutable_spec()->mutable_input()->set_width(50);
  job.mutable_spec()->mutable_input()->set_channels(3);
  job.mutable_spec()->mutable_constraints()->set_ram_bytes(40960);
  job.mutable_created()->set_seconds(1700000000);
  job.set_num_classes(10);
  job.add_class_names("cat");
  return job;
}

v1::Candidate MakeCandidate(int sequence, int k, int c, v1::CandidateState state) {
  v1::Candidate cand;
  cand.set_sequence(sequence);
  cand.set_k(k);
  cand.set_c(c);
  cand.set_state(state);
  cand.set_best_validation_accuracy(0.5 + sequence / 100.0);
  auto* v = cand.add_violations();
  v->set_resource("ram_bytes");
  v->set_value(50000);
  v->set_limit(40960);
  v->set_excess(9040);
  cand.add_epochs()->set_validation_accuracy(0.25);
  return cand;
}

v1::JobEvent StateEvent(v1::JobState state) {
  v1::JobEvent e;
  e.set_job_state(state);
  e.mutable_time()->set_seconds(1700000001);
  return e;
}

struct StoreFactory {
  std::string name;
  // Opens a fresh store (or the same one again when `reopen`) in `dir`.
  std::function<std::unique_ptr<JobStore>(const std::string& dir)> open;
};

class JobStoreTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("job_store_test_" + GetParam().name + "_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = GetParam().open(dir_.string());
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  std::unique_ptr<JobStore> store_;
};

TEST_P(JobStoreTest, JobRoundTripsWithCandidatesAndArtifacts) {
  v1::Job job = MakeJob("j1");
  ASSERT_TRUE(CreateJob(*store_, job).ok());
  v1::Candidate c0 = MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE);
  v1::Candidate c1 = MakeCandidate(1, 1, 1, v1::CANDIDATE_STATE_INFEASIBLE);
  ASSERT_TRUE(PutCandidate(*store_, "j1", c1).ok());  // out of order on purpose
  ASSERT_TRUE(PutCandidate(*store_, "j1", c0).ok());
  ArtifactRecord art;
  art.job_id = "j1";
  art.artifact.set_name("model.tflite");
  art.artifact.set_size_bytes(12345);
  art.artifact.set_sha256("deadbeef");
  art.path = "/state/artifacts/j1/model.tflite";
  ASSERT_TRUE(PutArtifact(*store_, art).ok());

  absl::StatusOr<v1::Job> got = GetJob(*store_, "j1");
  ASSERT_TRUE(got.ok()) << got.status();
  v1::Job expected = job;
  *expected.add_candidates() = c0;
  *expected.add_candidates() = c1;
  *expected.add_artifacts() = art.artifact;
  EXPECT_THAT(*got, EqualsProto(expected));
}

TEST_P(JobStoreTest, CandidateUpsertReplacesBySequence) {
  ASSERT_TRUE(CreateJob(*store_, MakeJob("j1")).ok());
  v1::Candidate running = MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_RUNNING);
  ASSERT_TRUE(PutCandidate(*store_, "j1", running).ok());
  v1::Candidate done = running;
  done.set_state(v1::CANDIDATE_STATE_DONE);
  done.set_best_validation_accuracy(0.875);
  done.set_worker("w1");
  ASSERT_TRUE(PutCandidate(*store_, "j1", done).ok());
  absl::StatusOr<v1::Job> got = GetJob(*store_, "j1");
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->candidates_size(), 1);
  EXPECT_THAT(got->candidates(0), EqualsProto(done));
}

TEST_P(JobStoreTest, UpdateJobKeepsCandidates) {
  ASSERT_TRUE(CreateJob(*store_, MakeJob("j1")).ok());
  ASSERT_TRUE(PutCandidate(*store_, "j1", MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE)).ok());
  v1::Job update = MakeJob("j1", v1::JOB_STATE_RUNNING);
  update.mutable_started()->set_seconds(1700000100);
  update.mutable_result()->set_found(true);
  update.mutable_result()->set_k(9);
  update.mutable_result()->set_c(3);
  update.mutable_result()->set_stop_reason("row k=10 peaked");
  ASSERT_TRUE(UpdateJob(*store_, update).ok());
  absl::StatusOr<v1::Job> got = GetJob(*store_, "j1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(got->started().seconds(), 1700000100);
  EXPECT_EQ(got->result().k(), 9);
  EXPECT_EQ(got->result().stop_reason(), "row k=10 peaked");
  EXPECT_EQ(got->candidates_size(), 1);
}

TEST_P(JobStoreTest, UnknownJobsAndDuplicatesGetClearErrors) {
  absl::Status st = UpdateJob(*store_, MakeJob("nope"));
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("job nope not found"));
  EXPECT_EQ(GetJob(*store_, "nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(PutCandidate(*store_, "nope", MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(AppendEvent(*store_, "nope", StateEvent(v1::JOB_STATE_RUNNING)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->ReadEvents("nope", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LastEventSequence(*store_, "nope").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(CreateJob(*store_, MakeJob("j1")).ok());
  st = CreateJob(*store_, MakeJob("j1"));
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(st.message(), HasSubstr("j1"));
  EXPECT_EQ(CreateJob(*store_, MakeJob("")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PutCandidate(*store_, "j1", MakeCandidate(-1, 1, 0, v1::CANDIDATE_STATE_DONE)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(JobStoreTest, EventsGetSequencesPerJobAndResumeAfterACursor) {
  ASSERT_TRUE(CreateJob(*store_, MakeJob("a")).ok());
  ASSERT_TRUE(CreateJob(*store_, MakeJob("b")).ok());
  EXPECT_EQ(*LastEventSequence(*store_, "a"), 0);
  EXPECT_EQ(*AppendEvent(*store_, "a", StateEvent(v1::JOB_STATE_RUNNING)), 1);
  EXPECT_EQ(*AppendEvent(*store_, "b", StateEvent(v1::JOB_STATE_RUNNING)), 1);
  v1::JobEvent cand_event;
  *cand_event.mutable_candidate() = MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE);
  cand_event.set_sequence(999);  // ignored: the store assigns sequences
  EXPECT_EQ(*AppendEvent(*store_, "a", cand_event), 2);
  EXPECT_EQ(*AppendEvent(*store_, "a", StateEvent(v1::JOB_STATE_SUCCEEDED)), 3);
  EXPECT_EQ(*LastEventSequence(*store_, "a"), 3);

  absl::StatusOr<std::vector<v1::JobEvent>> all = store_->ReadEvents("a", 0);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].sequence(), 1);
  EXPECT_EQ((*all)[1].sequence(), 2);
  EXPECT_THAT((*all)[1].candidate(), EqualsProto(cand_event.candidate()));
  EXPECT_EQ((*all)[2].job_state(), v1::JOB_STATE_SUCCEEDED);

  absl::StatusOr<std::vector<v1::JobEvent>> after = store_->ReadEvents("a", 1, 1);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].sequence(), 2);
  EXPECT_TRUE(store_->ReadEvents("a", 3)->empty());
  EXPECT_EQ(store_->ReadEvents("b", 0)->size(), 1u);
}

TEST_P(JobStoreTest, ProgressEventsAreNotPersisted) {
  ASSERT_TRUE(CreateJob(*store_, MakeJob("a")).ok());
  v1::JobEvent progress;
  progress.mutable_progress()->set_epoch(1);
  absl::Status st = AppendEvent(*store_, "a", progress).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("progress events are live-only"));
  EXPECT_EQ(AppendEvent(*store_, "a", v1::JobEvent()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*LastEventSequence(*store_, "a"), 0);
}

TEST_P(JobStoreTest, BatchIsAllOrNothing) {
  ASSERT_TRUE(CreateJob(*store_, MakeJob("j1")).ok());
  WriteBatch b;
  b.UpdateJob(MakeJob("j1", v1::JOB_STATE_RUNNING));
  b.PutCandidate("j1", MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE));
  b.AppendEvent("j1", StateEvent(v1::JOB_STATE_RUNNING));
  b.CreateJob(MakeJob("j2"));
  b.PutCandidate("missing", MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE));  // fails
  absl::StatusOr<WriteResult> r = store_->Write(b);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  // Nothing of the batch is visible.
  absl::StatusOr<v1::Job> j1 = GetJob(*store_, "j1");
  ASSERT_TRUE(j1.ok());
  EXPECT_EQ(j1->state(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(j1->candidates_size(), 0);
  EXPECT_EQ(*LastEventSequence(*store_, "j1"), 0);
  EXPECT_EQ(GetJob(*store_, "j2").status().code(), absl::StatusCode::kNotFound);

  // The same batch without the bad operation applies entirely, ops seeing earlier ones.
  WriteBatch ok;
  ok.CreateJob(MakeJob("j2"));
  ok.PutCandidate("j2", MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE));
  ok.AppendEvent("j2", StateEvent(v1::JOB_STATE_QUEUED));
  ok.AppendEvent("j2", StateEvent(v1::JOB_STATE_RUNNING));
  ok.UpdateJob(MakeJob("j2", v1::JOB_STATE_RUNNING));
  r = store_->Write(ok);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->events.size(), 2u);
  EXPECT_EQ(r->events[0].sequence(), 1);
  EXPECT_EQ(r->events[1].sequence(), 2);
  EXPECT_EQ(GetJob(*store_, "j2")->state(), v1::JOB_STATE_RUNNING);
  EXPECT_EQ(GetJob(*store_, "j2")->candidates_size(), 1);
}

TEST_P(JobStoreTest, LoadAllReturnsEverythingInCreationOrder) {
  ASSERT_TRUE(CreateJob(*store_, MakeJob("z", v1::JOB_STATE_RUNNING)).ok());
  ASSERT_TRUE(CreateJob(*store_, MakeJob("a", v1::JOB_STATE_SUCCEEDED)).ok());
  ASSERT_TRUE(PutCandidate(*store_, "z", MakeCandidate(0, 1, 0, v1::CANDIDATE_STATE_DONE)).ok());
  ASSERT_TRUE(PutCandidate(*store_, "z", MakeCandidate(1, 1, 1, v1::CANDIDATE_STATE_RUNNING)).ok());
  ASSERT_TRUE(AppendEvent(*store_, "z", StateEvent(v1::JOB_STATE_RUNNING)).ok());
  ASSERT_TRUE(AppendEvent(*store_, "z", StateEvent(v1::JOB_STATE_RUNNING)).ok());
  absl::StatusOr<StoreSnapshot> snap = store_->LoadAll();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_EQ(snap->jobs.size(), 2u);
  EXPECT_EQ(snap->jobs[0].id(), "z");
  EXPECT_EQ(snap->jobs[0].candidates_size(), 2);
  EXPECT_EQ(snap->jobs[0].candidates(1).state(), v1::CANDIDATE_STATE_RUNNING);
  EXPECT_EQ(snap->jobs[1].id(), "a");
  EXPECT_EQ(*LastEventSequence(*store_, "z"), 2);
  EXPECT_EQ(*LastEventSequence(*store_, "a"), 0);
}

TEST_P(JobStoreTest, ConcurrentWritersGetDistinctEventSequences) {
  ASSERT_TRUE(CreateJob(*store_, MakeJob("j")).ok());
  constexpr int kThreads = 4, kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        WriteBatch b;
        b.PutCandidate("j", MakeCandidate(t * kPerThread + i, t + 1, i, v1::CANDIDATE_STATE_DONE));
        b.AppendEvent("j", StateEvent(v1::JOB_STATE_RUNNING));
        EXPECT_TRUE(store_->Write(b).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  absl::StatusOr<std::vector<v1::JobEvent>> events = store_->ReadEvents("j", 0);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), static_cast<size_t>(kThreads * kPerThread));
  for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].sequence(), int64_t(i + 1));
  EXPECT_EQ(GetJob(*store_, "j")->candidates_size(), kThreads * kPerThread);
}

std::unique_ptr<JobStore> OpenSqlite(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<JobStore>> s = OpenSqliteJobStore(dir + "/state.db");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(
    Stores, JobStoreTest,
    ::testing::Values(StoreFactory{"memory",
                                   [](const std::string&) { return NewInMemoryJobStore(); }},
                      StoreFactory{"sqlite", OpenSqlite}),
    [](const ::testing::TestParamInfo<StoreFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace nanonas
