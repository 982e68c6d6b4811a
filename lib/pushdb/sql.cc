#include "pushdb/sql.h"

#include <sqlite3.h>

#include <utility>

namespace cm::pushdb {

namespace {

Code CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return Code::kBusy;
    case SQLITE_FULL: return Code::kNoSpace;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM: return Code::kIo;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return Code::kCorrupt;
    default: return Code::kFailure;
  }
}

}  // namespace

// ---- Stmt ------------------------------------------------------------------

Stmt::Stmt(Stmt&& o) noexcept
    : db_(o.db_), s_(std::exchange(o.s_, nullptr)), bind_error_(std::move(o.bind_error_)) {}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(s_);
    db_ = o.db_;
    s_ = std::exchange(o.s_, nullptr);
    bind_error_ = std::move(o.bind_error_);
  }
  return *this;
}

Stmt::~Stmt() { sqlite3_finalize(s_); }

Stmt& Stmt::Bind(int index, int64_t v) {
  int rc = sqlite3_bind_int64(s_, index, v);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = db_->ErrorFor(rc, "bind");
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view v) {
  // A null pointer would bind SQL NULL; an empty view is an empty string.
  const char* p = v.data() ? v.data() : "";
  int rc = sqlite3_bind_text64(s_, index, p, v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = db_->ErrorFor(rc, "bind");
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  int rc = sqlite3_bind_null(s_, index);
  if (rc != SQLITE_OK && bind_error_.ok()) bind_error_ = db_->ErrorFor(rc, "bind");
  return *this;
}

Result<bool> Stmt::Step() {
  if (!bind_error_.ok()) return bind_error_;
  int rc = sqlite3_step(s_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->ErrorFor(rc, sqlite3_sql(s_));
}

Status Stmt::Run() {
  for (;;) {
    CM_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return Status::Ok();
  }
}

void Stmt::Reset() {
  sqlite3_reset(s_);
  sqlite3_clear_bindings(s_);
  bind_error_ = Status::Ok();
}

int64_t Stmt::Int(int col) const { return sqlite3_column_int64(s_, col); }

std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(s_, col);
  int n = sqlite3_column_bytes(s_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(s_, col) == SQLITE_NULL; }

// ---- Sql -------------------------------------------------------------------

Result<std::unique_ptr<Sql>> Sql::Open(const std::string& path, std::chrono::milliseconds busy_timeout) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = path + ": open: " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return Error(CodeFor(rc), msg);
  }
  std::unique_ptr<Sql> sql(new Sql(db, path));
  sqlite3_extended_result_codes(db, 1);
  auto ms = busy_timeout.count();
  sqlite3_busy_timeout(db, ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms));
  return sql;
}

Sql::~Sql() { sqlite3_close_v2(db_); }

Status Sql::Exec(std::string_view text) {
  std::string s(text);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::Ok();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return Error(CodeFor(rc), path_ + ": " + msg);
}

Result<Stmt> Sql::Prepare(std::string_view text) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, text.data(), static_cast<int>(text.size()), &s, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return ErrorFor(rc, "prepare");
  }
  return Stmt(this, s);
}

int64_t Sql::LastInsertId() const { return sqlite3_last_insert_rowid(db_); }

Status Sql::ErrorFor(int rc, std::string_view what) const {
  // The connection's message is the most specific when it belongs to rc.
  const char* msg = (sqlite3_errcode(db_) == rc) ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Error(CodeFor(rc), path_ + ": " + std::string(what) + ": " + msg);
}

// ---- Txn -------------------------------------------------------------------

Status Txn::Begin(Kind kind) {
  CM_RETURN_IF_ERROR(db_->Exec(kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN"));
  open_ = true;
  return Status::Ok();
}

Status Txn::Commit() {
  CM_RETURN_IF_ERROR(db_->Exec("COMMIT"));
  open_ = false;
  return Status::Ok();
}

Txn::~Txn() {
  if (open_) (void)db_->Exec("ROLLBACK");
}

}  // namespace cm::pushdb
