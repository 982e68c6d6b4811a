// cm-delta: what changed between the shadow copy (OLD) and staging (NEW), as
// a delta table for cm-pack, a human listing or JSON lines. Options, output
// wiring and exit codes only: the work is delta::DiffTrees (lib/delta).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "delta/listing.h"
#include "delta/table_base.h"
#include "delta/tree_diff.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/hash.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"
#include "util/toml_flags.h"

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
  bool no_times = false;
  bool no_zstd_deltas = false;
  bool no_time_runs = false;
  bool exit_code = false;
  std::vector<std::string> excludes;
  std::vector<std::string> exclude_from;
  std::string config;
  const CLI::Option* checksum_flag = nullptr;  // -c and --no-checksum, which win over the config
  const CLI::Option* no_checksum_flag = nullptr;
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
9 no space, 1 other failure; with --exit-code, 15 when nothing changed
(see cm-delta(1)).)";

std::string OneLine(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// --config (util/toml_flags.h): checksum = bool fills -c/--no-checksum when
// neither is given; exclude = ["glob", ...] comes first, and --exclude-from
// and --exclude add to it. A missing or unreadable file is kUsage (exit 2), as
// every tool's --config.
Status LoadConfig(const Options& o, TreeDiffOptions* d) {
  auto read = ReadFileToString(o.config);
  if (!read.ok()) return Error(Code::kUsage, read.status().message());
  const std::string& text = *read;
  TomlFlags toml;
  toml.Bind("exclude", &d->excludes, nullptr).Bind("checksum", &d->checksum, {o.checksum_flag, o.no_checksum_flag});
  return toml.ApplyText(text, o.config);
}

Status BuildDiffOptions(Options& o, TreeDiffOptions* d) {
  if (!o.config.empty()) CM_RETURN_IF_ERROR(LoadConfig(o, d));
  if (o.checksum) d->checksum = true;
  if (o.no_checksum) d->checksum = false;
  d->old_may_be_missing = o.empty_old;
  d->times = !o.no_times;
  d->zstd_deltas = !o.no_zstd_deltas;
  d->time_runs = !o.no_time_runs;
  for (const auto& f : o.exclude_from) CM_RETURN_IF_ERROR(ReadGlobFile(f, &d->excludes));
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
  if (table_sink != nullptr) counter.emplace(table_sink);

  // A table names its base and result (table_base.h); a listing needs neither.
  ListingObserver reporter(o.list, o.json, &stdout_sink);
  auto res = counter ? DiffTreesWithBase(o.old_root, o.new_root, dopts, &*counter, &reporter)
                     : DiffTrees(o.old_root, o.new_root, dopts, nullptr, &reporter);
  log::ProgressDone();
  if (!res.ok()) return Fail(res.status());
  const DiffSummary& s = *res;
  if (o.json) {
    const uint64_t table_bytes = counter ? counter->bytes() : 0;
    std::string line = SummaryJson(s, dopts.checksum, counter ? &table_bytes : nullptr) + "\n";
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
  log::Info(SummaryLine(s));
  if (s.entries == 0) {
    // Said also without -v: cron logs and scripts see it (and --exit-code).
    if (log::Verbosity() >= 1) std::fprintf(stderr, "cm-delta: no changes\n");
    if (o.exit_code) return kExitNoChanges;
  }
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
  o.checksum_flag = cs;
  o.no_checksum_flag = ncs;
  app.add_flag("--no-times", o.no_times, "do not carry modification times (like rsync without -t): an mtime "
                                          "change alone is no change; written files get the time they are written");
  app.add_flag("--no-zstd-deltas", o.no_zstd_deltas, "only COPY/INSERT deltas, for servers whose cm-apply "
                                                      "predates the ZSTD delta instruction");
  app.add_flag("--no-time-runs", o.no_time_runs, "a META entry per file whose mtime alone changed, no TIMES "
                                                  "runs, for servers whose cm-apply predates them");
  app.add_flag("--exit-code", o.exit_code, "exit 15 instead of 0 when nothing changed (the table is written all "
                                          "the same: an empty one)");
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
