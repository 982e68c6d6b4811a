#include "pushdb/schema.h"

#include <string>

namespace cm::pushdb {

namespace {

// Version 2 (from 1): the release a job makes and how it was invoked (for
// `cm-push retry`); per server its live release and its last state/error
// across jobs (`cm-push servers`).
constexpr char kUpgradeV2[] = R"sql(
ALTER TABLE jobs ADD COLUMN release TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN invocation TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN live_release TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN last_state TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE servers ADD COLUMN last_job INTEGER;
UPDATE schema_version SET version = 2;
)sql";

// Version 3 (from 2): per server the manifest hash of the tree it runs, as
// its cm-apply reported it (the truth: convergence, exact reports).
constexpr char kUpgradeV3[] = R"sql(
ALTER TABLE servers ADD COLUMN live_manifest TEXT NOT NULL DEFAULT '';
UPDATE schema_version SET version = 3;
)sql";

// Version 1. Keep in step with docs/STATE.md. Times are Unix milliseconds.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE schema_version (
  version INTEGER NOT NULL
);
CREATE TABLE jobs (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  name             TEXT NOT NULL,
  kind             TEXT NOT NULL CHECK (kind IN ('publish', 'commit', 'rollback', 'replicate')),
  serials          TEXT NOT NULL DEFAULT '',
  state            TEXT NOT NULL
                   CHECK (state IN ('queued', 'running', 'done', 'partial', 'failed', 'aborted')),
  queued_ms        INTEGER NOT NULL,
  started_ms       INTEGER,
  finished_ms      INTEGER,
  controller_pid   INTEGER NOT NULL,
  controller_start INTEGER NOT NULL DEFAULT 0,
  options          TEXT NOT NULL DEFAULT '',
  summary          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_active ON jobs (state) WHERE state IN ('queued', 'running');
CREATE TABLE job_targets (
  job    INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  site   TEXT NOT NULL,
  server TEXT NOT NULL,
  PRIMARY KEY (job, server)
);
CREATE INDEX job_targets_by_pair ON job_targets (site, server);
CREATE TABLE server_status (
  job        INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  server     TEXT NOT NULL,
  site       TEXT NOT NULL,
  serial     INTEGER NOT NULL DEFAULT 0,
  state      TEXT NOT NULL CHECK (state IN ('pending', 'fetching', 'received', 'staged',
                                            'committed', 'failed', 'rolled-back')),
  error      TEXT NOT NULL DEFAULT '',
  updated_ms INTEGER NOT NULL,
  PRIMARY KEY (job, server)
);
CREATE TABLE servers (
  server       TEXT PRIMARY KEY,
  site         TEXT NOT NULL,
  live_serial  INTEGER NOT NULL DEFAULT 0,
  live_job     INTEGER,
  last_seen_ms INTEGER
);
)sql";

Result<bool> HasTable(Sql* db, const char* name) {
  CM_ASSIGN_OR_RETURN(Stmt st, db->Prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"));
  st.Bind(1, std::string_view(name));
  return st.Step();
}

Result<int64_t> CountTables(Sql* db) {
  CM_ASSIGN_OR_RETURN(Stmt st, db->Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'"));
  CM_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : 0;
}

}  // namespace

Result<int64_t> ReadSchemaVersion(Sql* db) {
  CM_ASSIGN_OR_RETURN(bool has, HasTable(db, "schema_version"));
  if (!has) return int64_t{0};
  CM_ASSIGN_OR_RETURN(Stmt st, db->Prepare("SELECT version FROM schema_version"));
  CM_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Error(Code::kCorrupt, db->path() + ": schema_version is empty");
  return st.Int(0);
}

Status PrepareSchema(Sql* db) {
  Txn txn(db);
  CM_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  CM_ASSIGN_OR_RETURN(int64_t version, ReadSchemaVersion(db));
  if (version > kSchemaVersion) {
    return Error(Code::kFailure, db->path() + ": schema version " + std::to_string(version) +
                                     " is newer than this cm-push understands (" +
                                     std::to_string(kSchemaVersion) + "); use a newer cm-push");
  }
  if (version == kSchemaVersion) return txn.Commit();
  if (version == 0) {
    CM_ASSIGN_OR_RETURN(int64_t tables, CountTables(db));
    if (tables != 0) return Error(Code::kCorrupt, db->path() + ": not a cm-push state database");
    CM_RETURN_IF_ERROR(db->Exec(kSchemaV1));
    CM_RETURN_IF_ERROR(db->Exec("PRAGMA application_id = " + std::to_string(kApplicationId)));
    CM_RETURN_IF_ERROR(db->Exec("INSERT INTO schema_version (version) VALUES (1)"));
    version = 1;
  }
  // Upgrades, one step per version, each ending with UPDATE schema_version.
  if (version == 1) {
    CM_RETURN_IF_ERROR(db->Exec(kUpgradeV2));
    version = 2;
  }
  if (version == 2) {
    CM_RETURN_IF_ERROR(db->Exec(kUpgradeV3));
    version = 3;
  }
  if (version != kSchemaVersion)
    return Error(Code::kCorrupt, db->path() + ": unknown schema version " + std::to_string(version));
  return txn.Commit();
}

}  // namespace cm::pushdb
