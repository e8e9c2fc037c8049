#include "server/store/sqlite_job_store.h"

#include <sqlite3.h>

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "common/base/log.h"
#include "common/base/status_macros.h"

namespace nanonas {
namespace {

// Version 1: the initial schema. Version 2: the datasets table goes (the dataset registry keeps
// its own records). Append new versions; never edit a released one.
const std::vector<SchemaMigration>& BuiltinMigrations() {
  static const auto* migrations = new std::vector<SchemaMigration>{
      {1,
       {
           // rowid gives the creation order; header is the Job without candidates/artifacts.
           "CREATE TABLE jobs (id TEXT NOT NULL UNIQUE, state INTEGER NOT NULL, "
           "header BLOB NOT NULL)",
           "CREATE INDEX jobs_by_state ON jobs (state)",
           "CREATE TABLE candidates (job_id TEXT NOT NULL REFERENCES jobs (id), "
           "sequence INTEGER NOT NULL, k INTEGER NOT NULL, c INTEGER NOT NULL, "
           "state INTEGER NOT NULL, record BLOB NOT NULL, PRIMARY KEY (job_id, sequence)) "
           "WITHOUT ROWID",
           "CREATE TABLE events (job_id TEXT NOT NULL REFERENCES jobs (id), "
           "sequence INTEGER NOT NULL, event BLOB NOT NULL, PRIMARY KEY (job_id, sequence)) "
           "WITHOUT ROWID",
           "CREATE TABLE datasets (id TEXT PRIMARY KEY, path TEXT NOT NULL, "
           "size_bytes INTEGER NOT NULL, source TEXT NOT NULL, info BLOB NOT NULL) WITHOUT ROWID",
           "CREATE TABLE artifacts (job_id TEXT NOT NULL REFERENCES jobs (id), "
           "name TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER NOT NULL, "
           "sha256 TEXT NOT NULL, PRIMARY KEY (job_id, name)) WITHOUT ROWID",
       }},
      {2, {"DROP TABLE datasets"}},
  };
  return *migrations;
}

// Maps a SQLite result code to the status code the caller should act on.
absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

std::string Hint(int rc) {
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return " (the file is not a nanonas state database or is corrupt; move it away to start "
             "afresh)";
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return " (the file or its directory is not writable)";
    case SQLITE_CANTOPEN:
      return " (does the directory exist and is it writable?)";
    case SQLITE_FULL:
      return " (the disk is full)";
    default:
      return "";
  }
}

// RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  int prepare_rc() const { return rc_; }
  Stmt& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    Check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& BindBlob(int i, const std::string& v) {
    Check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code (also a failed prepare or bind).
  int Step() {
    if (rc_ != SQLITE_OK) return rc_;
    return sqlite3_step(stmt_);
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }
  std::string Blob(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col))
             : std::string();
  }

 private:
  void Check(int rc) {
    if (rc_ == SQLITE_OK && rc != SQLITE_OK) rc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

v1::Job Header(v1::Job job) {
  job.clear_candidates();
  job.clear_artifacts();
  return job;
}

class SqliteJobStore : public JobStore {
 public:
  SqliteJobStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  ~SqliteJobStore() override {
    int rc = sqlite3_close(db_);
    if (rc != SQLITE_OK) {
      NANONAS_LOG(WARNING) << "closing state database " << path_ << ": " << sqlite3_errstr(rc);
    }
  }

  // Applies the connection settings and migrations. Called once, before any other use.
  absl::Status Init(const SqliteJobStoreOptions& options) {
    absl::MutexLock lock(&mu_);
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, options.busy_timeout_ms);
    if (options.exclusive) NANONAS_RETURN_IF_ERROR(Exec("PRAGMA locking_mode = EXCLUSIVE"));
    {
      Stmt s(db_, "PRAGMA journal_mode = WAL");
      int rc = s.Step();
      if (rc != SQLITE_ROW) return OpenError(rc, "switching to WAL mode");
      if (s.Text(0) != "wal") {
        return absl::FailedPreconditionError(absl::StrCat(
            "state database ", path_, ": cannot switch to WAL journal mode (got ", s.Text(0), ")"));
      }
    }
    NANONAS_RETURN_IF_ERROR(Exec(options.synchronous == SqliteJobStoreOptions::Synchronous::kFull
                                     ? "PRAGMA synchronous = FULL"
                                     : "PRAGMA synchronous = NORMAL"));
    NANONAS_RETURN_IF_ERROR(Exec("PRAGMA foreign_keys = ON"));
    if (sqlite3_db_readonly(db_, "main") == 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("state database ", path_, " is read-only; the coordinator must write it"));
    }
    {
      // Up to 3 findings, one line, kept short: a corrupt file can yield thousands.
      Stmt s(db_, "PRAGMA quick_check(3)");
      int rc = s.Step();
      if (rc != SQLITE_ROW) return OpenError(rc, "checking integrity");
      if (s.Text(0) != "ok") {
        std::string findings = absl::StrReplaceAll(s.Text(0), {{"\n", "; "}});
        if (findings.size() > 300) findings = findings.substr(0, 300) + "...";
        return absl::FailedPreconditionError(absl::StrCat(
            "state database ", path_, " is corrupt: ", findings, Hint(SQLITE_CORRUPT)));
      }
    }
    return Migrate(options.extra_migrations);
  }

  absl::StatusOr<WriteResult> Write(const WriteBatch& batch) override {
    NANONAS_RETURN_IF_ERROR(ValidateBatch(batch));
    absl::MutexLock lock(&mu_);
    NANONAS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    WriteResult result;
    for (const WriteBatch::Op& op : batch.ops()) {
      absl::Status st = Apply(op, result);
      if (!st.ok()) {
        Rollback();
        return st;
      }
    }
    absl::Status st = Exec("COMMIT");
    if (!st.ok()) {
      Rollback();
      return st;
    }
    return result;
  }

  absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                       int64_t after_sequence, int limit) override {
    absl::MutexLock lock(&mu_);
    NANONAS_RETURN_IF_ERROR(NeedJob(job_id));
    Stmt s(db_,
           "SELECT sequence, event FROM events WHERE job_id = ? AND sequence > ? "
           "ORDER BY sequence LIMIT ?");
    s.Bind(1, job_id).Bind(2, after_sequence).Bind(3, limit > 0 ? int64_t{limit} : int64_t{-1});
    std::vector<v1::JobEvent> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      v1::JobEvent e;
      if (!e.ParseFromString(s.Blob(1))) {
        return Corrupt("events", absl::StrCat(job_id, "/", s.Int(0)));
      }
      out.push_back(std::move(e));
    }
    if (rc != SQLITE_DONE) return Error(rc, "reading events of job " + job_id);
    return out;
  }

  absl::StatusOr<StoreSnapshot> LoadAll() override {
    absl::MutexLock lock(&mu_);
    // One read transaction: a consistent snapshot even if writes were interleaved.
    NANONAS_RETURN_IF_ERROR(Exec("BEGIN"));
    absl::StatusOr<StoreSnapshot> snap = LoadAllLocked();
    Rollback();
    return snap;
  }

 private:
  absl::StatusOr<StoreSnapshot> LoadAllLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StoreSnapshot snap;
    NANONAS_ASSIGN_OR_RETURN(snap.jobs, Jobs("SELECT id, header FROM jobs ORDER BY rowid"));
    return snap;
  }

  absl::Status Apply(const WriteBatch::Op& op, WriteResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (auto* o = std::get_if<WriteBatch::CreateJobOp>(&op)) {
      NANONAS_ASSIGN_OR_RETURN(bool exists, JobExists(o->job.id()));
      if (exists) {
        return absl::AlreadyExistsError(absl::StrCat("job ", o->job.id(), " already exists"));
      }
      Stmt s(db_, "INSERT INTO jobs (id, state, header) VALUES (?, ?, ?)");
      s.Bind(1, o->job.id())
          .Bind(2, int64_t{o->job.state()})
          .BindBlob(3, Header(o->job).SerializeAsString());
      return Done(s.Step(), "creating job " + o->job.id());
    }
    if (auto* o = std::get_if<WriteBatch::UpdateJobOp>(&op)) {
      return WriteHeader(Header(o->job));
    }
    if (auto* o = std::get_if<WriteBatch::PutCandidateOp>(&op)) {
      NANONAS_RETURN_IF_ERROR(NeedJob(o->job_id));
      const v1::Candidate& c = o->candidate;
      Stmt s(db_,
             "INSERT OR REPLACE INTO candidates (job_id, sequence, k, c, state, record) "
             "VALUES (?, ?, ?, ?, ?, ?)");
      s.Bind(1, o->job_id)
          .Bind(2, int64_t{c.sequence()})
          .Bind(3, int64_t{c.k()})
          .Bind(4, int64_t{c.c()})
          .Bind(5, int64_t{c.state()})
          .BindBlob(6, c.SerializeAsString());
      return Done(s.Step(),
                  absl::StrCat("writing candidate ", c.sequence(), " of job ", o->job_id));
    }
    if (auto* o = std::get_if<WriteBatch::AppendEventOp>(&op)) {
      NANONAS_RETURN_IF_ERROR(NeedJob(o->job_id));
      NANONAS_ASSIGN_OR_RETURN(int64_t last, LastSequence(o->job_id));
      v1::JobEvent e = o->event;
      e.set_sequence(last + 1);
      Stmt s(db_, "INSERT INTO events (job_id, sequence, event) VALUES (?, ?, ?)");
      s.Bind(1, o->job_id).Bind(2, e.sequence()).BindBlob(3, e.SerializeAsString());
      NANONAS_RETURN_IF_ERROR(Done(s.Step(), "appending an event to job " + o->job_id));
      result.events.push_back(std::move(e));
      return absl::OkStatus();
    }
    if (auto* o = std::get_if<WriteBatch::PutArtifactOp>(&op)) {
      const ArtifactRecord& a = o->artifact;
      NANONAS_RETURN_IF_ERROR(NeedJob(a.job_id));
      Stmt s(db_,
             "INSERT OR REPLACE INTO artifacts (job_id, name, path, size_bytes, sha256) "
             "VALUES (?, ?, ?, ?, ?)");
      s.Bind(1, a.job_id)
          .Bind(2, a.artifact.name())
          .Bind(3, a.path)
          .Bind(4, a.artifact.size_bytes())
          .Bind(5, a.artifact.sha256());
      return Done(s.Step(),
                  absl::StrCat("writing artifact ", a.artifact.name(), " of job ", a.job_id));
    }
    return absl::InternalError("unknown write batch operation");
  }

  absl::Status WriteHeader(const v1::Job& header) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt s(db_, "UPDATE jobs SET state = ?, header = ? WHERE id = ?");
    s.Bind(1, int64_t{header.state()}).BindBlob(2, header.SerializeAsString()).Bind(3, header.id());
    NANONAS_RETURN_IF_ERROR(Done(s.Step(), "updating job " + header.id()));
    if (sqlite3_changes(db_) == 0) return UnknownJob(header.id());
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::Job>> Jobs(const std::string& sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<std::pair<std::string, std::string>> rows;
    {
      Stmt s(db_, sql.c_str());
      int rc;
      while ((rc = s.Step()) == SQLITE_ROW) rows.emplace_back(s.Text(0), s.Blob(1));
      if (rc != SQLITE_DONE) return Error(rc, "listing jobs");
    }
    std::vector<v1::Job> out;
    for (const auto& [id, header] : rows) {
      NANONAS_ASSIGN_OR_RETURN(v1::Job job, AssembleJob(id, header));
      out.push_back(std::move(job));
    }
    return out;
  }

  absl::StatusOr<v1::Job> AssembleJob(const std::string& id, const std::string& header_bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::Job job;
    if (!job.ParseFromString(header_bytes)) return Corrupt("jobs", id);
    Stmt s(db_, "SELECT sequence, record FROM candidates WHERE job_id = ? ORDER BY sequence");
    s.Bind(1, id);
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      if (!job.add_candidates()->ParseFromString(s.Blob(1))) {
        return Corrupt("candidates", absl::StrCat(id, "/", s.Int(0)));
      }
    }
    if (rc != SQLITE_DONE) return Error(rc, "reading candidates of job " + id);
    NANONAS_ASSIGN_OR_RETURN(std::vector<ArtifactRecord> artifacts, Artifacts(id));
    for (ArtifactRecord& a : artifacts) *job.add_artifacts() = std::move(a.artifact);
    return job;
  }

  absl::StatusOr<std::vector<ArtifactRecord>> Artifacts(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt s(db_,
           "SELECT name, path, size_bytes, sha256 FROM artifacts WHERE job_id = ? ORDER BY name");
    s.Bind(1, job_id);
    std::vector<ArtifactRecord> out;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      ArtifactRecord a;
      a.job_id = job_id;
      a.artifact.set_name(s.Text(0));
      a.path = s.Text(1);
      a.artifact.set_size_bytes(s.Int(2));
      a.artifact.set_sha256(s.Text(3));
      out.push_back(std::move(a));
    }
    if (rc != SQLITE_DONE) return Error(rc, "reading artifacts of job " + job_id);
    return out;
  }

  absl::StatusOr<bool> JobExists(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt s(db_, "SELECT 1 FROM jobs WHERE id = ?");
    s.Bind(1, job_id);
    int rc = s.Step();
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return Error(rc, "looking up job " + job_id);
  }

  absl::Status NeedJob(const std::string& job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    NANONAS_ASSIGN_OR_RETURN(bool exists, JobExists(job_id));
    return exists ? absl::OkStatus() : UnknownJob(job_id);
  }

  absl::StatusOr<int64_t> LastSequence(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt s(db_, "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE job_id = ?");
    s.Bind(1, job_id);
    int rc = s.Step();
    if (rc != SQLITE_ROW) return Error(rc, "reading the last event of job " + job_id);
    return s.Int(0);
  }

  absl::Status Migrate(const std::vector<SchemaMigration>& extra)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<SchemaMigration> all = BuiltinMigrations();
    all.insert(all.end(), extra.begin(), extra.end());
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i].to_version != static_cast<int>(i) + 1) {
        return absl::InvalidArgumentError(absl::StrCat("schema migration ", i, " goes to version ",
                                                       all[i].to_version, ", expected ", i + 1));
      }
    }
    const int target = static_cast<int>(all.size());
    absl::Status st = Exec("BEGIN IMMEDIATE");
    if (!st.ok()) return st;
    st = MigrateLocked(all, target);
    if (!st.ok()) {
      Rollback();
      return st;
    }
    return Exec("COMMIT");
  }

  absl::Status MigrateLocked(const std::vector<SchemaMigration>& all, int target)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    NANONAS_RETURN_IF_ERROR(
        Exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
    int64_t version = 0;
    bool has_row = false;
    {
      Stmt s(db_, "SELECT version FROM schema_version");
      int rc = s.Step();
      if (rc == SQLITE_ROW) {
        version = s.Int(0);
        has_row = true;
      } else if (rc != SQLITE_DONE) {
        return Error(rc, "reading the schema version");
      }
    }
    if (version > target) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state database ", path_, " has schema version ", version,
          ", newer than this build supports (", target, "); run a newer nanonas-coordinator"));
    }
    for (int v = static_cast<int>(version); v < target; ++v) {
      for (const std::string& sql : all[v].statements) {
        absl::Status st = Exec(sql.c_str());
        if (!st.ok()) {
          return absl::Status(
              st.code(), absl::StrCat("migrating to schema version ", v + 1, ": ", st.message()));
        }
      }
      if (v > 0) {
        NANONAS_LOG(INFO) << "state database " << path_ << ": migrated to schema version " << v + 1;
      }
    }
    if (version != target || !has_row) {
      NANONAS_RETURN_IF_ERROR(Exec("DELETE FROM schema_version"));
      Stmt s(db_, "INSERT INTO schema_version (version) VALUES (?)");
      s.Bind(1, int64_t{target});
      NANONAS_RETURN_IF_ERROR(Done(s.Step(), "writing the schema version"));
    }
    return absl::OkStatus();
  }

  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return Error(rc, sql);
    return absl::OkStatus();
  }

  void Rollback() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  absl::Status Done(int rc, const std::string& what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (rc == SQLITE_DONE || rc == SQLITE_ROW) return absl::OkStatus();
    return Error(rc, what);
  }

  absl::Status Error(int rc, const std::string& what) {
    return absl::Status(CodeFor(rc), absl::StrCat("state database ", path_, ": ", what, ": ",
                                                  sqlite3_errmsg(db_), Hint(rc)));
  }

  // During Init: a busy database means another process holds it.
  absl::Status OpenError(int rc, const std::string& what) {
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      return absl::FailedPreconditionError(
          absl::StrCat("state database ", path_,
                       " is locked by another process (another "
                       "nanonas-coordinator on the same --state-dir?)"));
    }
    return Error(rc, what);
  }

  absl::Status Corrupt(const char* table, const std::string& key) {
    return absl::InternalError(absl::StrCat("state database ", path_, ": corrupt ", table, " row ",
                                            key, " (its record does not parse)"));
  }

  static absl::Status UnknownJob(const std::string& id) {
    return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  }

  const std::string path_;
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace

int SqliteJobStoreSchemaVersion() { return static_cast<int>(BuiltinMigrations().size()); }

absl::StatusOr<std::unique_ptr<JobStore>> OpenSqliteJobStore(const std::string& path,
                                                             const SqliteJobStoreOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("state database path is empty");
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int sys = db ? sqlite3_system_errno(db) : 0;
    sqlite3_close(db);
    absl::StatusCode code = CodeFor(rc);
    if (code == absl::StatusCode::kInternal) code = absl::StatusCode::kFailedPrecondition;
    return absl::Status(code,
                        absl::StrCat("cannot open state database ", path, ": ", detail,
                                     sys ? absl::StrCat(" (", std::strerror(sys), ")") : Hint(rc)));
  }
  auto store = std::make_unique<SqliteJobStore>(path, db);
  NANONAS_RETURN_IF_ERROR(store->Init(options));
  return std::unique_ptr<JobStore>(std::move(store));
}

}  // namespace nanonas
