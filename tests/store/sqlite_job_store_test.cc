// What only the SQLite store does: survive reopening and crashes, WAL, schema versions, errors.
#include "server/store/sqlite_job_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/support/job_store_helpers.h"

namespace nanonas {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::AnyOf;
using ::testing::HasSubstr;

namespace fs = std::filesystem;

class SqliteJobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("sqlite_store_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "state.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<JobStore> Open(const SqliteJobStoreOptions& options = {}) {
    absl::StatusOr<std::unique_ptr<JobStore>> s = OpenSqliteJobStore(path_, options);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  // Runs one SQL query on the file with a plain connection; returns the first column of the
  // first row ("" when none).
  std::string Query(const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  fs::path dir_;
  std::string path_;
};

v1::Job Job(const std::string& id) {
  v1::Job job;
  job.set_id(id);
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->set_dataset_id("sha256:" + id);
  job.mutable_spec()->mutable_constraints()->set_flash_bytes(131072);
  return job;
}

v1::Candidate Cand(int seq) {
  v1::Candidate c;
  c.set_sequence(seq);
  c.set_k(1 + seq / 6);
  c.set_c(seq % 6);
  c.set_state(v1::CANDIDATE_STATE_DONE);
  c.set_best_validation_accuracy(0.001 * seq);
  return c;
}

TEST_F(SqliteJobStoreTest, ReopenAfterCloseKeepsEverything) {
  StoreSnapshot before;
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    for (int j = 0; j < 3; ++j) {
      std::string id = "job" + std::to_string(j);
      WriteBatch b;
      b.CreateJob(Job(id));
      for (int i = 0; i < 5; ++i) {
        b.PutCandidate(id, Cand(i));
        v1::JobEvent e;
        *e.mutable_candidate() = Cand(i);
        b.AppendEvent(id, e);
      }
      ArtifactRecord a;
      a.job_id = id;
      a.artifact.set_name("model.h");
      a.artifact.set_size_bytes(10);
      a.artifact.set_sha256("00ff");
      a.path = "/x/" + id;
      b.PutArtifact(a);
      ASSERT_TRUE(store->Write(b).ok());
    }
    v1::Job done = Job("job1");
    done.set_state(v1::JOB_STATE_SUCCEEDED);
    ASSERT_TRUE(UpdateJob(*store, done).ok());
    before = *store->LoadAll();
  }
  std::unique_ptr<JobStore> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<StoreSnapshot> after = store->LoadAll();
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->jobs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(before.jobs[i], after->jobs[i])) << i;
  }
  EXPECT_EQ(after->jobs[1].state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(after->jobs[0].candidates_size(), 5);
  EXPECT_EQ(after->jobs[0].artifacts_size(), 1);
  EXPECT_EQ(*LastEventSequence(*store, "job2"), 5);
  // Sequences continue after a reopen.
  v1::JobEvent e;
  e.set_job_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(*AppendEvent(*store, "job0", e), 6);
}

TEST_F(SqliteJobStoreTest, UsesWalJournalAndRecordsTheSchemaVersion) {
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(CreateJob(*store, Job("j")).ok());
    EXPECT_TRUE(fs::exists(path_ + "-wal"));
  }
  EXPECT_EQ(Query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(Query("SELECT version FROM schema_version"),
            std::to_string(SqliteJobStoreSchemaVersion()));
  EXPECT_EQ(Query("SELECT COUNT(*) FROM schema_version"), "1");
  EXPECT_EQ(Query("SELECT id FROM jobs"), "j");
}

TEST_F(SqliteJobStoreTest, AVersionOneFileLosesItsUnusedDatasetsTable) {
  ASSERT_NE(Open(), nullptr);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'datasets'"), "0");
  // A file written by a version-1 build: the table is back and the version says 1.
  Query("CREATE TABLE datasets (id TEXT PRIMARY KEY)");
  Query("UPDATE schema_version SET version = 1");
  ASSERT_NE(Open(), nullptr);
  EXPECT_EQ(Query("SELECT COUNT(*) FROM sqlite_master WHERE name = 'datasets'"), "0");
  EXPECT_EQ(Query("SELECT version FROM schema_version"),
            std::to_string(SqliteJobStoreSchemaVersion()));
}

TEST_F(SqliteJobStoreTest, NewerSchemaVersionIsRefused) {
  ASSERT_NE(Open(), nullptr);
  Query("UPDATE schema_version SET version = 99");
  absl::Status st = OpenSqliteJobStore(path_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr(path_));
  EXPECT_THAT(st.message(), HasSubstr("schema version 99, newer than this build supports"));
}

TEST_F(SqliteJobStoreTest, MigrationHookRunsOnceForNewVersionsAndKeepsData) {
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(CreateJob(*store, Job("old")).ok());
  }
  const int v = SqliteJobStoreSchemaVersion();
  SqliteJobStoreOptions opts;
  // Re-running ALTER TABLE ADD COLUMN would fail, so a second run is detected.
  opts.extra_migrations.push_back(
      {v + 1, {"ALTER TABLE jobs ADD COLUMN owner TEXT", "UPDATE jobs SET owner = 'alice'"}});
  {
    std::unique_ptr<JobStore> store = Open(opts);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(GetJob(*store, "old")->spec().dataset_id(), "sha256:old");
    ASSERT_TRUE(CreateJob(*store, Job("new")).ok());
  }
  EXPECT_EQ(Query("SELECT version FROM schema_version"), std::to_string(v + 1));
  EXPECT_EQ(Query("SELECT owner FROM jobs WHERE id = 'old'"), "alice");
  {
    std::unique_ptr<JobStore> again = Open(opts);  // already at v + 1: nothing runs
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->LoadAll()->jobs.size(), 2u);
  }
  // A build that only knows v refuses the migrated file.
  EXPECT_EQ(OpenSqliteJobStore(path_).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteJobStoreTest, FailingMigrationChangesNothing) {
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(CreateJob(*store, Job("j")).ok());
  }
  const int v = SqliteJobStoreSchemaVersion();
  SqliteJobStoreOptions bad;
  bad.extra_migrations.push_back(
      {v + 1, {"ALTER TABLE jobs ADD COLUMN owner TEXT", "THIS IS NOT SQL"}});
  absl::Status st = OpenSqliteJobStore(path_, bad).status();
  EXPECT_FALSE(st.ok());
  EXPECT_THAT(st.message(), HasSubstr("migrating to schema version " + std::to_string(v + 1)));
  EXPECT_EQ(Query("SELECT version FROM schema_version"), std::to_string(v));
  std::unique_ptr<JobStore> store = Open();  // the half-run migration was rolled back
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(GetJob(*store, "j").ok());

  SqliteJobStoreOptions gap;
  gap.extra_migrations.push_back({v + 2, {"SELECT 1"}});
  store.reset();
  EXPECT_EQ(OpenSqliteJobStore(path_, gap).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteJobStoreTest, BadPathsGetClearErrorsNamingTheFile) {
  std::string missing_dir = (dir_ / "no" / "such" / "dir" / "state.db").string();
  absl::Status st = OpenSqliteJobStore(missing_dir).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr(missing_dir));
  EXPECT_THAT(st.message(), HasSubstr("directory"));

  std::ofstream(dir_ / "plain-file") << "x";
  std::string under_file = (dir_ / "plain-file" / "state.db").string();
  st = OpenSqliteJobStore(under_file).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr(under_file));

  st = OpenSqliteJobStore(dir_.string()).status();  // a directory, not a file
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr(dir_.string()));

  EXPECT_EQ(OpenSqliteJobStore("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteJobStoreTest, NotADatabaseIsRefused) {
  {
    std::ofstream f(path_, std::ios::binary);
    for (int i = 0; i < 200; ++i) f << "this is a text file, not a SQLite database\n";
  }
  absl::Status st = OpenSqliteJobStore(path_).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr(path_));
  EXPECT_THAT(st.message(), HasSubstr("not a database"));
}

TEST_F(SqliteJobStoreTest, CorruptPagesAreDetectedAtOpen) {
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    for (int j = 0; j < 20; ++j) {
      WriteBatch b;
      std::string id = "job" + std::to_string(j);
      b.CreateJob(Job(id));
      for (int i = 0; i < 20; ++i) b.PutCandidate(id, Cand(i));
      ASSERT_TRUE(store->Write(b).ok());
    }
  }
  ASSERT_FALSE(fs::exists(path_ + "-wal"));  // checkpointed into the main file at close
  const auto size = fs::file_size(path_);
  ASSERT_GT(size, 8 * 4096u);
  {
    // Scribble over every page after the first (the header stays valid).
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    std::mt19937 rng(1);
    for (std::uintmax_t page = 1; page * 4096 < size; ++page) {
      f.seekp(static_cast<std::streamoff>(page * 4096 + 100));
      for (int i = 0; i < 1000; ++i) f.put(static_cast<char>(rng()));
    }
  }
  absl::Status st = OpenSqliteJobStore(path_).status();
  EXPECT_THAT(st.code(), AnyOf(absl::StatusCode::kFailedPrecondition, absl::StatusCode::kInternal));
  EXPECT_THAT(st.message(), HasSubstr(path_));
  EXPECT_THAT(st.message(), HasSubstr("corrupt"));
}

TEST_F(SqliteJobStoreTest, SecondOpenerIsLockedOutUntilTheFirstCloses) {
  std::unique_ptr<JobStore> first = Open();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(CreateJob(*first, Job("j")).ok());
  SqliteJobStoreOptions quick;
  quick.busy_timeout_ms = 50;
  absl::Status st = OpenSqliteJobStore(path_, quick).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("locked by another process"));
  first.reset();
  std::unique_ptr<JobStore> second = Open(quick);
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(GetJob(*second, "j").ok());
}

// The child writes batches in a loop and acknowledges each commit on a pipe; the parent kills it
// with SIGKILL at a random point, 12 times. After every kill the database must open cleanly, hold
// every acknowledged batch, and hold only whole batches: per job, candidates 0..n-1, events 1..n
// and a header whose counter says n. (A store without transactions fails this test.)
TEST_F(SqliteJobStoreTest, KillNineWhileWritingLeavesAConsistentDatabase) {
  {
    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(CreateJob(*store, Job("crash")).ok());
  }
  std::mt19937 rng(42);
  int acknowledged_total = 0;
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE(round);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      absl::StatusOr<std::unique_ptr<JobStore>> store = OpenSqliteJobStore(path_);
      if (!store.ok()) _exit(2);
      absl::StatusOr<int64_t> last = LastEventSequence(**store, "crash");
      if (!last.ok()) _exit(3);
      for (int64_t n = *last;; ++n) {
        WriteBatch b;
        v1::Job header = Job("crash");
        header.set_num_classes(static_cast<int>(n + 1));  // the counter
        b.UpdateJob(header);
        b.PutCandidate("crash", Cand(static_cast<int>(n)));
        v1::JobEvent e;
        *e.mutable_candidate() = Cand(static_cast<int>(n));
        b.AppendEvent("crash", e);
        if (!(*store)->Write(b).ok()) _exit(4);
        char ack = 1;
        if (write(fds[1], &ack, 1) != 1) _exit(5);
      }
    }
    close(fds[1]);
    const int target = std::uniform_int_distribution<int>(3, 60)(rng);
    int acks = 0;
    char buf;
    while (acks < target && read(fds[0], &buf, 1) == 1) ++acks;
    ASSERT_EQ(acks, target) << "the writer died early";
    // The child is starting its next batch now; land the kill anywhere inside it (a batch
    // commit takes a few ms with synchronous=FULL on this machine).
    usleep(std::uniform_int_distribution<useconds_t>(0, 8000)(rng));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    while (read(fds[0], &buf, 1) == 1) ++acks;  // commits acknowledged before the kill landed
    close(fds[0]);
    acknowledged_total += acks;

    std::unique_ptr<JobStore> store = Open();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<v1::Job> job = GetJob(*store, "crash");
    ASSERT_TRUE(job.ok()) << job.status();
    absl::StatusOr<std::vector<v1::JobEvent>> events = store->ReadEvents("crash", 0);
    ASSERT_TRUE(events.ok());
    const int n = job->candidates_size();
    EXPECT_GE(n, acknowledged_total);      // every acknowledged commit survived
    EXPECT_LE(n, acknowledged_total + 1);  // at most one committed but not yet acknowledged
    EXPECT_EQ(job->num_classes(), n);
    ASSERT_EQ(static_cast<int>(events->size()), n);
    for (int i = 0; i < n; ++i) {
      EXPECT_EQ(job->candidates(i).sequence(), i);
      EXPECT_EQ((*events)[i].sequence(), i + 1);
      EXPECT_EQ((*events)[i].candidate().sequence(), i);
    }
    acknowledged_total = n;
  }
  EXPECT_EQ(Query("PRAGMA integrity_check"), "ok");
}

}  // namespace
}  // namespace nanonas
