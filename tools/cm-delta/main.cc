// cm-delta: what changed between the shadow copy (OLD) and staging (NEW), as
// a delta table for cm-pack, a human listing or JSON lines. Options, output
// wiring and exit codes only: the work is delta::DiffTrees (lib/delta).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <toml++/toml.h>

#include "delta/tree_diff.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"

namespace {

using namespace cm;
using namespace cm::delta;

struct Options {
  std::string old_root, new_root;
  std::string output;  // "" = stdout
  bool list = false;
  bool json = false;
  bool checksum = false;
  bool no_checksum = false;
  bool empty_old = false;
  std::vector<std::string> excludes;
  std::vector<std::string> exclude_from;
  std::string config;
  std::string block_size;
  std::string max_index;
  int verbose = 0;
  bool quiet = false;
};

constexpr const char* kFooter = R"(Output:
  By default the binary delta table goes to stdout (never to a terminal) or
  to FILE with -o. --list prints one line per change instead: "A path" added,
  "D path" removed, "M path" modified, "m path" metadata only (directories end
  in '/'). --json prints one JSON object per change, then a summary object.
  With -o FILE, --list/--json go to stdout and the table to FILE.

Examples:
  cm-delta shadow/ staging/ | cm-pack - --source staging/ -o a.cma
  cm-delta --list shadow/ staging/
  cm-delta --checksum --exclude '*.tmp' -o delta.cmdt shadow/ staging/

Exit status: 0 ok, 2 usage, 3 a tree or file not found, 10 I/O error,
9 no space, 1 other failure (see cm-delta(1)).)";

std::string OneLine(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// Listing names are printed with control bytes and backslashes escaped so
// one change is always one line.
std::string Escape(const std::string& s) {
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

// Buffers writes to a file descriptor (the table's records are small).
class BufferedFdSink : public ByteSink {
 public:
  explicit BufferedFdSink(int fd) : fd_(fd) {}
  Status Write(const void* buf, size_t n) override {
    if (buf_.size() + n > kSize) CM_RETURN_IF_ERROR(Flush());
    if (n >= kSize) return WriteFull(fd_, buf, n);
    buf_.append(static_cast<const char*>(buf), n);
    return Status::Ok();
  }
  Status Flush() {
    Status st = WriteFull(fd_, buf_.data(), buf_.size());
    buf_.clear();
    return st;
  }

 private:
  static constexpr size_t kSize = 1 << 16;
  int fd_;
  std::string buf_;
};

class CountingSink : public ByteSink {
 public:
  explicit CountingSink(ByteSink* next) : next_(next) {}
  Status Write(const void* buf, size_t n) override {
    bytes_ += n;
    return next_->Write(buf, n);
  }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink* next_;
  uint64_t bytes_ = 0;
};

std::string OctalMode(uint32_t m) {
  char b[8];
  std::snprintf(b, sizeof b, "%04o", m);
  return b;
}

// Turns entries into --list / --json lines and progress on a terminal.
class Reporter : public DiffObserver {
 public:
  Reporter(bool list, bool json, ByteSink* out) : list_(list), json_(json), out_(out) {}

  Status OnEntry(const DeltaEntry& e, const EntryDetails& d) override {
    if (list_) {
      char tag = e.op == Op::kAdd ? 'A' : e.op == Op::kRemove ? 'D' : e.op == Op::kModify ? 'M' : 'm';
      std::string line = std::string(1, tag) + " " + Escape(e.path) + (e.kind == Kind::kDir ? "/" : "") + "\n";
      return out_->Write(line.data(), line.size());
    }
    if (json_) {
      JsonObject o;
      o.Str("type", "entry").Str("op", OpName(e.op)).Str("kind", KindName(e.kind)).Str("path", e.path);
      o.Str("mode", OctalMode(e.mode)).Uint("uid", e.uid).Uint("gid", e.gid).Int("mtime_ns", e.mtime_ns);
      if (e.kind == Kind::kFile) o.Uint("size", e.size);
      bool content = e.op == Op::kAdd || e.op == Op::kModify;
      if (e.kind == Kind::kFile && content) o.Str("hash", ToHex(e.hash));
      if (e.kind == Kind::kSymlink && content) o.Str("target", e.link_target);
      if (e.kind == Kind::kFile && e.op == Op::kModify) {
        o.Str("encoding", e.encoding == Encoding::kDelta ? "delta" : "whole");
        if (e.encoding == Encoding::kDelta) {
          o.Uint("delta_bytes", d.delta_bytes).Uint("copied", d.copied).Uint("inserted", d.inserted);
          o.Uint("base_size", e.base_size).Str("base_hash", ToHex(e.base_hash));
        }
      }
      std::string line = o.Build() + "\n";
      return out_->Write(line.data(), line.size());
    }
    return Status::Ok();
  }

  void OnWarning(const std::string& path, const std::string& what) override {
    log::Warn(Escape(path) + ": " + what);
  }

  void OnProgress(const DiffSummary& s) override {
    if (!progress_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    log::Progress("scanned " + std::to_string(s.scanned) + " entries, read " + HumanBytes(s.bytes_read) +
                  ", " + std::to_string(s.entries) + " changes");
  }

 private:
  bool list_, json_;
  ByteSink* out_;
  bool progress_ = log::ProgressEnabled();
  std::chrono::steady_clock::time_point last_{};
};

Status ReadExcludeFile(const std::string& path, std::vector<std::string>* out) {
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

// TOML: exclude = ["glob", ...], checksum = bool. Flags win over the file;
// --exclude globs are added to the file's.
Status LoadConfig(const std::string& path, Options* o, TreeDiffOptions* d) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    if (access(path.c_str(), R_OK) != 0) return ErrnoError(path, errno);
    auto line = e.source().begin.line;
    return Error(Code::kUsage, path + ":" + std::to_string(line) + ": " + std::string(e.description()));
  }
  for (auto&& [key, value] : t) {
    if (key == "exclude") {
      const toml::array* arr = value.as_array();
      if (arr == nullptr) return Error(Code::kUsage, path + ": exclude must be an array of strings");
      for (auto&& item : *arr) {
        auto s = item.value<std::string>();
        if (!s) return Error(Code::kUsage, path + ": exclude must be an array of strings");
        d->excludes.push_back(*s);
      }
    } else if (key == "checksum") {
      auto b = value.value<bool>();
      if (!b) return Error(Code::kUsage, path + ": checksum must be true or false");
      if (!o->checksum && !o->no_checksum) d->checksum = *b;
    } else {
      return Error(Code::kUsage, path + ": unknown key '" + std::string(key.str()) + "'");
    }
  }
  return Status::Ok();
}

Status BuildDiffOptions(Options& o, TreeDiffOptions* d) {
  if (!o.config.empty()) CM_RETURN_IF_ERROR(LoadConfig(o.config, &o, d));
  if (o.checksum) d->checksum = true;
  if (o.no_checksum) d->checksum = false;
  d->old_may_be_missing = o.empty_old;
  for (const auto& f : o.exclude_from) CM_RETURN_IF_ERROR(ReadExcludeFile(f, &d->excludes));
  for (const auto& g : o.excludes) d->excludes.push_back(g);
  if (!o.block_size.empty()) {
    auto v = ParseSize(o.block_size);
    if (!v || *v < 4 || *v > (1u << 30)) return Error(Code::kUsage, "--block-size: expected 4..1G bytes");
    d->delta.block_size = static_cast<uint32_t>(*v);
  }
  if (!o.max_index.empty()) {
    auto v = ParseSize(o.max_index);
    if (!v) return Error(Code::kUsage, "--max-index: expected a size such as 256M");
    d->delta.max_index_bytes = *v;
  }
  return Status::Ok();
}

int Fail(const Status& st) {
  log::Error(st);
  return ExitCodeFor(st);
}

int Run(Options& o) {
  TreeDiffOptions dopts;
  Status st = BuildDiffOptions(o, &dopts);
  if (!st.ok()) return Fail(st);

  const bool listing = o.list || o.json;
  const bool table_to_stdout = o.output == "-" || (o.output.empty() && !listing);
  const bool want_table = table_to_stdout || !o.output.empty();
  if (listing && table_to_stdout) return Fail(Error(Code::kUsage, "--list/--json and -o - both want stdout"));
  if (table_to_stdout && IsTerminal(1))
    return Fail(Error(Code::kUsage, "refusing to write the binary delta table to a terminal (use -o FILE or a pipe)"));
  dopts.listing_only = !want_table && !o.json;

  BufferedFdSink stdout_sink(1);
  AtomicFile file;
  std::unique_ptr<BufferedFdSink> file_sink;
  ByteSink* table_sink = nullptr;
  if (table_to_stdout) {
    table_sink = &stdout_sink;
  } else if (want_table) {
    st = file.Open(o.output, 0644);
    if (!st.ok()) return Fail(st);
    file_sink = std::make_unique<BufferedFdSink>(file.fd());
    table_sink = file_sink.get();
  }
  std::optional<CountingSink> counter;
  std::optional<DeltaTableWriter> table;
  if (table_sink != nullptr) {
    counter.emplace(table_sink);
    table.emplace(&*counter);
  }

  Reporter reporter(o.list, o.json, &stdout_sink);
  auto res = DiffTrees(o.old_root, o.new_root, dopts, table ? &*table : nullptr, &reporter);
  log::ProgressDone();
  if (!res.ok()) return Fail(res.status());
  const DiffSummary& s = *res;
  if (o.json) {
    JsonObject j;
    j.Str("type", "summary").Uint("entries", s.entries).Uint("added", s.added).Uint("removed", s.removed);
    j.Uint("modified", s.modified).Uint("meta", s.meta).Uint("delta_files", s.delta_files);
    j.Uint("whole_files", s.whole_files).Uint("delta_bytes", s.delta_bytes).Uint("scanned", s.scanned);
    j.Uint("bytes_read", s.bytes_read).Bool("checksum", dopts.checksum);
    if (counter) j.Uint("table_bytes", counter->bytes());
    std::string line = j.Build() + "\n";
    st = stdout_sink.Write(line.data(), line.size());
    if (!st.ok()) return Fail(Status(st.code(), "stdout: " + st.message()));
  }
  if (file_sink) {
    st = file_sink->Flush();
    if (st.ok()) st = file.Commit();
    if (!st.ok()) return Fail(Status(st.code(), st.message().rfind(o.output, 0) == 0 ? st.message() : o.output + ": " + st.message()));
  }
  st = stdout_sink.Flush();
  if (!st.ok()) return Fail(Status(st.code(), "stdout: " + st.message()));
  log::Info(std::to_string(s.entries) + " changes (" + std::to_string(s.added) + " added, " +
            std::to_string(s.removed) + " removed, " + std::to_string(s.modified) + " modified, " +
            std::to_string(s.meta) + " metadata); " + std::to_string(s.delta_files) + " deltas (" +
            HumanBytes(s.delta_bytes) + "), " + std::to_string(s.whole_files) + " whole");
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  InstallTempCleanup();
  log::Init("cm-delta", 1);
  Options o;
  CLI::App app{"cm-delta: list what changed from OLD (the shadow copy) to NEW (staging) and\n"
               "write the versioned binary delta table that cm-pack turns into assignments."};
  app.name("cm-delta");
  app.set_version_flag("--version", std::string("cm-delta ") + CM_VERSION);
  app.add_option("OLD", o.old_root, "old tree (the shadow copy); must exist unless --empty-old")->required();
  app.add_option("NEW", o.new_root, "new tree (staging)")->required();
  app.add_option("-o,--output", o.output, "write the table to FILE atomically ('-' = stdout)")->type_name("FILE");
  auto* list = app.add_flag("--list", o.list, "print a human listing of the changes instead of the table");
  auto* json = app.add_flag("--json", o.json, "print JSON lines (one per change, then a summary) instead");
  list->excludes(json);
  auto* cs = app.add_flag("-c,--checksum", o.checksum, "detect changes by content hash, not size+mtime");
  auto* ncs = app.add_flag("--no-checksum", o.no_checksum, "detect changes by size+mtime (overrides the config)");
  cs->excludes(ncs);
  app.add_flag("--empty-old", o.empty_old, "treat a missing OLD as an empty tree (everything is new)");
  app.add_option("--exclude", o.excludes, "skip paths matching GLOB (repeatable; matches the relative path "
                                          "or the base name; a directory takes its subtree)")
      ->type_name("GLOB")->allow_extra_args(false);
  app.add_option("--exclude-from", o.exclude_from, "read exclude globs from FILE, one per line ('#' comments)")
      ->type_name("FILE")->allow_extra_args(false);
  app.add_option("--config", o.config, "TOML defaults: exclude = [\"glob\", ...], checksum = true|false")
      ->type_name("FILE");
  app.add_option("--block-size", o.block_size, "delta index block size (default: from the file size)")
      ->type_name("BYTES");
  app.add_option("--max-index", o.max_index, "memory bound of one file's delta index (default 256M)")
      ->type_name("BYTES");
  app.add_flag("-v,--verbose", o.verbose, "more messages on stderr (repeat for debug)");
  app.add_flag("-q,--quiet", o.quiet, "errors only on stderr");
  app.footer(kFooter);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::CallForVersion& e) {
    std::cout << e.what() << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    log::Error(OneLine(e.what()) + " (try --help)");
    return kExitUsage;
  }
  log::Init("cm-delta", o.quiet ? 0 : 1 + o.verbose);
  try {
    return Run(o);
  } catch (const std::exception& e) {
    log::Error(std::string("internal error: ") + e.what());
    return kExitFailure;
  }
}
