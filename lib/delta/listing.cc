#include "delta/listing.h"

#include <cstdio>

#include "util/file_util.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"

namespace cm::delta {

std::string EscapeForListing(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\%03o", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

Status ReadGlobFile(const std::string& path, std::vector<std::string>* out) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  size_t start = 0;
  const std::string& t = *text;
  while (start < t.size()) {
    size_t end = t.find('\n', start);
    if (end == std::string::npos) end = t.size();
    std::string line = t.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] != '#') out->push_back(line);
    start = end + 1;
  }
  return Status::Ok();
}

Status BufferedFdSink::Write(const void* buf, size_t n) {
  if (buf_.size() + n > kSize) CM_RETURN_IF_ERROR(Flush());
  if (n >= kSize) return WriteFull(fd_, buf, n);
  buf_.append(static_cast<const char*>(buf), n);
  return Status::Ok();
}

Status BufferedFdSink::Flush() {
  Status st = WriteFull(fd_, buf_.data(), buf_.size());
  buf_.clear();
  return st;
}

namespace {
std::string OctalMode(uint32_t m) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", m);
  return b;
}
}  // namespace

ListingObserver::ListingObserver(bool list, bool json, ByteSink* out)
    : list_(list), json_(json), out_(out), progress_(log::ProgressEnabled()) {}

Status ListingObserver::OnEntry(const DeltaEntry& e, const EntryDetails& d) {
  if (e.op == Op::kTimes) {
    if (list_) {
      std::string line = "t " + EscapeForListing(e.path) + " .. " + EscapeForListing(e.last_path) + " (" +
                         std::to_string(e.size) + ")\n";
      return out_->Write(line.data(), line.size());
    }
    if (!json_) return Status::Ok();
    JsonObject o;
    o.Str("type", "entry").Str("op", OpName(e.op)).Str("path", e.path).Str("last_path", e.last_path);
    o.Int("mtime_ns", e.mtime_ns).Uint("count", e.size);
    std::string line = o.Build() + "\n";
    return out_->Write(line.data(), line.size());
  }
  if (list_) {
    char tag = e.op == Op::kAdd ? 'A' : e.op == Op::kRemove ? 'D' : e.op == Op::kModify ? 'M' : 'm';
    std::string line =
        std::string(1, tag) + " " + EscapeForListing(e.path) + (e.kind == Kind::kDir ? "/" : "") + "\n";
    return out_->Write(line.data(), line.size());
  }
  if (!json_) return Status::Ok();
  JsonObject o;
  o.Str("type", "entry").Str("op", OpName(e.op)).Str("kind", KindName(e.kind)).Str("path", e.path);
  o.Str("mode", OctalMode(e.mode)).Uint("uid", e.uid).Uint("gid", e.gid).Int("mtime_ns", e.mtime_ns);
  if (e.kind == Kind::kFile) o.Uint("size", e.size);
  bool content = e.op == Op::kAdd || e.op == Op::kModify;
  if (e.kind == Kind::kFile && content) o.Str("hash", ToHex(e.hash));
  if (e.kind == Kind::kSymlink && content) o.Str("target", e.link_target);
  if (e.kind == Kind::kFile && (e.op == Op::kModify || (e.op == Op::kAdd && e.encoding == Encoding::kDelta))) {
    o.Str("encoding", e.encoding == Encoding::kDelta ? "delta" : "whole");
    if (!e.base_path.empty()) o.Str("base_path", e.base_path);
    if (e.encoding == Encoding::kDelta) {
      o.Uint("delta_bytes", d.delta_bytes).Uint("copied", d.copied).Uint("inserted", d.inserted);
      o.Uint("base_size", e.base_size).Str("base_hash", ToHex(e.base_hash));
    }
  }
  std::string line = o.Build() + "\n";
  return out_->Write(line.data(), line.size());
}

void ListingObserver::OnWarning(const std::string& path, const std::string& what) {
  log::Warn(EscapeForListing(path) + ": " + what);
}

void ListingObserver::OnProgress(const DiffSummary& s) {
  if (!progress_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  log::Progress("scanned " + std::to_string(s.scanned) + " entries, read " + HumanBytes(s.bytes_read) + ", " +
                std::to_string(s.entries) + " changes");
}

std::string SummaryJson(const DiffSummary& s, bool checksum, const uint64_t* table_bytes_or_null) {
  JsonObject j;
  j.Str("type", "summary").Uint("entries", s.entries).Uint("added", s.added).Uint("removed", s.removed);
  j.Uint("modified", s.modified).Uint("meta", s.meta).Uint("delta_files", s.delta_files);
  j.Uint("whole_files", s.whole_files).Uint("moved_files", s.moved_files).Uint("time_runs", s.time_runs).Uint("time_run_entries", s.time_run_entries).Uint("delta_bytes", s.delta_bytes).Uint("scanned", s.scanned);
  j.Uint("bytes_read", s.bytes_read).Bool("checksum", checksum);
  if (table_bytes_or_null) j.Uint("table_bytes", *table_bytes_or_null);
  return j.Build();
}

std::string SummaryLine(const DiffSummary& s) {
  return std::to_string(s.entries) + " changes (" + std::to_string(s.added) + " added, " +
         std::to_string(s.removed) + " removed, " + std::to_string(s.modified) + " modified, " +
         std::to_string(s.meta) + " metadata); " + std::to_string(s.delta_files) + " deltas (" +
         HumanBytes(s.delta_bytes) + "), " + std::to_string(s.whole_files) + " whole";
}

}  // namespace cm::delta
