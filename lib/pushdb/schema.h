// The state database's schema (described in docs/STATE.md) and its version.
// A database records its version in the one-row table schema_version; this
// build reads and writes exactly kSchemaVersion, upgrades older databases in
// place, and refuses newer ones.
#pragma once

#include <cstdint>

#include "pushdb/sql.h"
#include "util/status.h"

namespace cm::pushdb {

constexpr int64_t kSchemaVersion = 3;
// PRAGMA application_id: "CMPS", so `file state.db` can tell it apart.
constexpr int64_t kApplicationId = 0x434d5053;

// Creates the schema in an empty database, or upgrades an older one, in one
// write transaction (safe when several processes open a new state directory
// at once). Errors: kFailure for a schema newer than this build understands;
// kCorrupt for a database that is not a cm-push state database; kBusy/kIo
// from SQLite.
Status PrepareSchema(Sql* db);

// The version recorded in the database; 0 when it has no schema yet.
Result<int64_t> ReadSchemaVersion(Sql* db);

}  // namespace cm::pushdb
