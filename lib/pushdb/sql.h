// A thin owner of one SQLite connection and its prepared statements, with
// errors as Status values. Internal to lib/pushdb: callers use StateDb.
//
// Error mapping (SQLite primary result code -> Code): BUSY/LOCKED -> kBusy,
// FULL -> kNoSpace, IOERR/CANTOPEN/READONLY/PERM -> kIo, CORRUPT/NOTADB ->
// kCorrupt, anything else -> kFailure. Messages read
// "<db path>: <what>: <sqlite message>".
//
// Thread safety: none. One Sql (and its statements) per thread; several
// connections, in one process or many, may share a database file.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace cm::pushdb {

class Sql;

// A prepared statement. Bind with 1-based indexes, then Step() until it
// returns false. A bind error is kept and returned by the next Step().
class Stmt {
 public:
  Stmt() = default;
  Stmt(Stmt&& o) noexcept;
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  Stmt& Bind(int index, int64_t v);
  Stmt& Bind(int index, std::string_view v);
  Stmt& BindNull(int index);
  // true: a row is ready for the column getters; false: the statement is done.
  Result<bool> Step();
  // Runs a statement that returns no rows (or ignores them).
  Status Run();
  // Makes the statement ready to run again, with no parameters bound.
  void Reset();

  // Column getters, 0-based; valid only after Step() returned true.
  int64_t Int(int col) const;
  std::string Text(int col) const;
  bool IsNull(int col) const;

 private:
  friend class Sql;
  Stmt(Sql* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  Sql* db_ = nullptr;
  sqlite3_stmt* s_ = nullptr;
  Status bind_error_;
};

class Sql {
 public:
  // Opens (creating when absent) the database file at `path`, with extended
  // result codes and the given busy timeout (how long a statement waits for
  // another connection's lock before failing with kBusy).
  static Result<std::unique_ptr<Sql>> Open(const std::string& path, std::chrono::milliseconds busy_timeout);
  ~Sql();
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  // Runs one or more statements that return no rows.
  Status Exec(std::string_view sql);
  Result<Stmt> Prepare(std::string_view sql);
  int64_t LastInsertId() const;
  const std::string& path() const { return path_; }

  // The Status for SQLite result code `rc` of the operation `what`.
  Status ErrorFor(int rc, std::string_view what) const;

 private:
  Sql(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

// A transaction that rolls back unless committed. Write transactions use
// BEGIN IMMEDIATE: they take the database's write lock up front (waiting up
// to the busy timeout), so a read-check-write sequence is atomic across
// processes and never fails half-way with a lock upgrade conflict.
class Txn {
 public:
  enum class Kind { kRead, kWrite };
  explicit Txn(Sql* db) : db_(db) {}
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  Status Begin(Kind kind);
  Status Commit();

 private:
  Sql* db_;
  bool open_ = false;
};

}  // namespace cm::pushdb
