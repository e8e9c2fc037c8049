// The coordinator's JobStore: one SQLite file in WAL mode.
//
// Durability: synchronous=FULL by default. In WAL mode FULL fsyncs the WAL on every commit, so a
// committed candidate result survives a power loss as well as a kill -9; NORMAL fsyncs only at
// checkpoints: still consistent after any crash and durable after a process crash, but a power
// loss may roll back the last commits, and a rolled-back candidate result would be trained again
// on resume. The coordinator commits a few times per candidate evaluation (seconds to minutes of
// training each), so FULL's extra fsync per commit costs nothing that matters.
//
// The file is opened in EXCLUSIVE locking mode by default: a second process (say, a second
// coordinator pointed at the same --state-dir) gets FAILED_PRECONDITION instead of resuming the
// same jobs twice. The lock dies with the process, so a restart after kill -9 opens normally.
//
// Schema: a schema_version table holds the version; migrations (the built-in ones, then
// Options::extra_migrations) run in one transaction at open for every version above the stored
// one. A file with a newer version than this build knows is refused (FAILED_PRECONDITION).
#ifndef NANONAS_SERVER_STORE_SQLITE_JOB_STORE_H_
#define NANONAS_SERVER_STORE_SQLITE_JOB_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/store/job_store.h"

namespace nanonas {

// Upgrades the schema from to_version - 1 to to_version with SQL statements.
struct SchemaMigration {
  int to_version = 0;
  std::vector<std::string> statements;
};

struct SqliteJobStoreOptions {
  enum class Synchronous { kNormal, kFull };
  Synchronous synchronous = Synchronous::kFull;
  bool exclusive = true;
  int busy_timeout_ms = 2000;
  // Run after the built-in migrations; their to_version must continue the sequence.
  std::vector<SchemaMigration> extra_migrations;
};

// The schema version this build creates (the last built-in migration).
int SqliteJobStoreSchemaVersion();

// Opens (creating if needed) the store at `path`. Errors name the file:
//   FAILED_PRECONDITION: the directory is missing or not writable, the file is read-only, not a
//     SQLite database or corrupt, locked by another process, or has a newer schema version;
//   INVALID_ARGUMENT: empty path or a bad migration list; INTERNAL: anything else from SQLite.
absl::StatusOr<std::unique_ptr<JobStore>> OpenSqliteJobStore(
    const std::string& path, const SqliteJobStoreOptions& options = {});

}  // namespace nanonas

#endif  // NANONAS_SERVER_STORE_SQLITE_JOB_STORE_H_
