// cm-pack: turn a delta table into signed assignments; control assignments;
// keys; inspect and verify. Option parsing and exit codes only: the work is
// in lib/pack.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "base_flags.h"
#include "pack/inspect.h"
#include "pack/pack_settings.h"
#include "pack/packer.h"
#include "pack/replicate.h"
#include "pack/tool_output.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"

namespace {

using namespace cm;
using namespace cm::pack;

struct Options {
  std::string delta;        // table path or "-"
  std::string source;
  std::string output;
  std::string type;
  PackSettings pack;
  std::string pub_key;
  std::string pub_out;      // keygen --pub
  std::string config;
  std::string dir;          // replicate
  std::string file;         // inspect / verify
  std::string release;      // rollback --release
  bool group = false;       // keygen --group
  bool json = false;
  int verbose = 0;
  bool quiet = false;
};

int Fail(const Status& st) {
  log::Error(st);
  return ExitCodeFor(st);
}

void Report(const PackResult& r, const Options& o) {
  if (o.json) {
    std::cout << PackResultJson(r) << "\n";
    return;
  }
  for (const auto& line : PackResultLines(r)) log::Info(line);
}

// Packs through StdoutSpool when the output is stdout.
template <typename F>
int PackTo(Options& o, F&& pack) {
  StdoutSpool spool;
  const std::string shown = o.output.empty() || o.output == "-" ? "the assignment on stdout" : o.output;
  Status st = spool.Prepare(&o.output);
  if (!st.ok()) return Fail(st);
  Result<PackResult> r = pack(o.output);
  if (!r.ok()) return Fail(r.status());
  st = spool.Flush(*r);
  if (!st.ok()) return Fail(st);
  Report(*r, o);
  // Said also without -v: a cron job's log shows why no release follows.
  if (r->no_changes && !o.quiet)
    std::fprintf(stderr, "cm-pack: no changes: %s changes nothing (cm-apply makes no new release for it)\n",
                 shown.c_str());
  return kExitOk;
}

int DoPack(Options& o, Type type) {
  if (o.source.empty() && type != Type::kRemove) return Fail(Error(Code::kUsage, "--source DIR is required"));
  if (o.json && (o.output.empty() || o.output == "-"))
    return Fail(Error(Code::kUsage, "--json needs -o FILE (stdout carries the JSON)"));
  auto po = MakePackOptions(o.pack, type);
  if (!po.ok()) return Fail(po.status());
  UniqueFd in;
  int fd = 0;
  if (o.delta != "-") {
    in.reset(open(o.delta.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Fail(ErrnoError(o.delta, errno));
    struct stat st;
    if (::fstat(in.get(), &st) == 0 && S_ISDIR(st.st_mode))
      return Fail(Error(Code::kUsage, o.delta + ": is a directory, not a delta table"));
    fd = in.get();
  } else if (IsTerminal(0)) {
    return Fail(Error(Code::kUsage, "reading a delta table from a terminal; pipe cm-delta into cm-pack"));
  }
  return PackTo(o, [&](const std::string& out) -> Result<PackResult> {
    po->output = out;
    FdSource src(fd);
    auto r = PackDeltaTable(&src, o.source, *po);
    if (r.ok()) return r;
    return Status(r.status().code(), (o.delta == "-" ? std::string("stdin") : o.delta) + ": " + r.status().message());
  });
}

}  // namespace

int main(int argc, char** argv) {
  InstallTempCleanup();
  Options o;
  CLI::App app{"cm-pack: pack a delta table into assignments (the unit that travels), sign, inspect, verify.\n"
               "  cm-delta shadow/ staging/ | cm-pack - --source staging/ -o a.cma\n"
               "  cm-pack commit --job J -o c.cma     cm-pack inspect a.cma"};
  app.name("cm-pack");
  app.set_version_flag("--version", std::string("cm-pack ") + CM_VERSION);
  app.add_flag("-v,--verbose", o.verbose, "More messages on stderr (repeatable)");
  app.add_flag("-q,--quiet", o.quiet, "Errors only");
  app.add_option("--config", o.config, "TOML configuration (default CONFIG_DIR/pack.toml if present; CONFIG_DIR = $CM_CONFIG_DIR or /etc/content-mover)");
  app.fallthrough();  // -q/-v/--config also after the subcommand: cm-pack replicate DIR -o a.cma -q

  auto add_common = [&](CLI::App* a) {
    a->add_option("-o,--output", o.output, "Output assignment file ('-' = stdout)");
    a->add_option("--job", o.pack.job, "Job id (1-32 of A-Z a-z 0-9 . _ -; default job-<serial>)");
    a->add_option("--serial", o.pack.serial, "Serial number of the (first) assignment")->check(CLI::PositiveNumber);
    a->add_option("--serial-file", o.pack.serial_file, "File holding the last serial used; advanced under a lock");
    a->add_option("--sign-key", o.pack.sign_key, "Ed25519 signing key (default CONFIG_DIR/ccm.key if present)");
    a->add_option("--group-key", o.pack.group_key, "Encrypt with this group key (from cm-pack keygen --group)");
    a->add_flag("--json", o.json, "Print a JSON summary on stdout");
    a->add_option("--chunk-size", o.pack.chunk_size,
                  "Chunk table (format 2) with chunks of this size, a power of two 64K..64M (default 64K); "
                  "0 writes format 1 without a table");
    a->add_option("--format", o.pack.format, "Assignment format: 3 (default), 2 for servers that read no 3, "
                                        "1 (with --chunk-size 0)")->check(CLI::Range(1, 3));
  };
  auto add_data = [&](CLI::App* a) {
    a->add_option("--max-size", o.pack.max_size, "Split the job into parts of at most this many bytes (default 4G)");
    a->add_option("--level", o.pack.level, "zstd level for whole files (default 3)")->check(CLI::Range(1, 22));
    a->add_option("--delta-level", o.pack.delta_level, "zstd level for delta streams over 64K (default 17; random-looking ones get --level)")
        ->check(CLI::Range(1, 22));
    a->add_flag("--no-owner", o.pack.no_owner, "Do not carry file owners");
  };

  // Top level: cm-pack DELTA --source DIR
  app.add_option("delta", o.delta, "Delta table from cm-delta ('-' = stdin)");
  app.add_option("--source", o.source, "The new tree the delta table describes (for whole files)");
  app.add_option("--type", o.type, "publish (default), synchronize, remove or hot");
  add_common(&app);
  add_data(&app);
  AddBaseFlags(&app, &o.pack);

  auto* replicate = app.add_subcommand("replicate", "Pack a whole tree (a new or resynced server)");
  replicate->add_option("dir", o.dir, "The tree")->required();
  replicate->add_option("--type", o.type, "replicate (default) or restore");
  add_common(replicate);
  add_data(replicate);
  AddBaseFlags(replicate, &o.pack, /*only_result=*/true);
  auto* commit = app.add_subcommand("commit", "Commit assignment: switch servers to the staged job");
  add_common(commit);
  auto* rollback = app.add_subcommand("rollback", "Rollback assignment: switch servers back, or to a release");
  add_common(rollback);
  rollback->add_option("--release", o.release, "The release to switch to (s<serial>-<job>, as cm-apply status "
                                                "shows); default: back to each server's previous release");
  auto* keygen = app.add_subcommand("keygen", "Make an Ed25519 signing key (FILE, FILE.pub) or a group key");
  keygen->add_option("-o,--output", o.output, "Key file to write")->required();
  keygen->add_option("--pub", o.pub_out, "Public key file to write (default FILE.pub)");
  keygen->add_flag("--group", o.group, "A 32-byte group key for encryption instead");
  auto* inspect = app.add_subcommand("inspect", "Describe an assignment (header and commands)");
  inspect->add_option("file", o.file, "Assignment")->required();
  inspect->add_option("--pub-key", o.pub_key, "Also check the signature");
  inspect->add_option("--group-key", o.pack.group_key, "Group key for an encrypted assignment");
  inspect->add_flag("--json", o.json, "JSON on stdout");
  auto* verify = app.add_subcommand("verify", "Check hashes and signature; exit 0 when valid");
  verify->add_option("file", o.file, "Assignment")->required();
  verify->add_option("--pub-key", o.pub_key, "Public key the signature must verify with");
  verify->add_option("--group-key", o.pack.group_key, "Group key for an encrypted assignment");
  verify->add_flag("--json", o.json, "JSON on stdout");
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cm-pack: error: %s (try --help)\n", e.what());
    return kExitUsage;
  }
  log::Init("cm-pack", o.quiet ? 0 : 1 + o.verbose);
  std::string cfg = o.config.empty() ? ConfigDir() + "/pack.toml" : o.config;
  const CLI::App* active = app.get_subcommands().empty() ? &app : app.get_subcommands()[0];
  auto flag = [&](const char* opt) { return active->get_option_no_throw(opt); };
  Status st = LoadPackConfig(cfg, !o.config.empty(), flag, &o.pack);
  if (!st.ok()) return Fail(st);
  // Signed by default with the CCM's key where cm-push finds it (CONFIG_DIR/ccm.key).
  if (o.pack.sign_key.empty() && !*keygen && !*inspect && !*verify) o.pack.sign_key = DefaultFile("", "ccm.key");

  try {
    if (*keygen) {
      const std::string pub = o.pub_out.empty() ? o.output + ".pub" : o.pub_out;
      st = o.group ? GenerateGroupKey(o.output) : GenerateSigningKey(o.output, pub);
      if (!st.ok()) return Fail(st);
      log::Info(o.group ? "wrote group key " + o.output : "wrote " + o.output + " and " + pub);
      return kExitOk;
    }
    if (*inspect || *verify) {
      auto ro = MakeReaderOptions(o.pub_key, o.pack.group_key);
      if (!ro.ok()) return Fail(ro.status());
      std::string text;
      st = DescribeAssignment(o.file, *ro, o.json, &text);
      if (*inspect || o.json) std::cout << text;
      if (!st.ok()) {
        log::Error(o.file + ": " + st.message());
        return ExitCodeFor(st);
      }
      if (*verify && !o.json && IsTerminal(1))
        std::cout << o.file << ": ok" << (ro->pub_key ? " (signature valid)" : " (hashes; no key given)") << "\n";
      return kExitOk;
    }
    if (*commit || *rollback) {
      auto po = MakePackOptions(o.pack, *commit ? Type::kCommit : Type::kRollback);
      if (!po.ok()) return Fail(po.status());
      po->rollback_release = o.release;
      return PackTo(o, [&](const std::string& out) {
        po->output = out;
        return PackControl(*po);
      });
    }
    if (*replicate) {
      auto t = ParseType(o.type.empty() ? "replicate" : o.type);
      if (!t || !IsWholeTree(*t)) return Fail(Error(Code::kUsage, "--type must be replicate or restore"));
      auto po = MakePackOptions(o.pack, *t);
      if (!po.ok()) return Fail(po.status());
      return PackTo(o, [&](const std::string& out) {
        po->output = out;
        return PackTree(o.dir, *po);
      });
    }
    if (o.delta.empty()) {
      std::fprintf(stderr, "cm-pack: error: no delta table given (try --help)\n");
      return kExitUsage;
    }
    auto t = ParseType(o.type.empty() ? "publish" : o.type);
    if (!t || IsWholeTree(*t) || IsControl(*t))
      return Fail(Error(Code::kUsage, "--type must be publish, synchronize, remove or hot"));
    return DoPack(o, *t);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cm-pack: error: internal: %s\n", e.what());
    return kExitFailure;
  }
}
