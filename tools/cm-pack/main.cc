// cm-pack: turn a delta table into signed assignments; control assignments;
// keys; inspect and verify. Option parsing and exit codes only: the work is
// in lib/pack.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <toml++/toml.h>

#include "pack/inspect.h"
#include "pack/packer.h"
#include "pack/replicate.h"
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
  std::string job;
  uint64_t serial = 0;
  std::string serial_file;
  std::string max_size = "4G";
  std::string chunk_size = "64K";  // chunk table (format v2; pack::kDefaultChunkSize); "0" = format v1
  int level = 3;
  int delta_level = 9;
  bool no_owner = false;
  std::string sign_key, group_key, pub_key;
  std::string config;
  std::string dir;          // replicate
  std::string file;         // inspect / verify
  bool group = false;       // keygen --group
  bool json = false;
  int verbose = 0;
  bool quiet = false;
};

// TOML defaults: flags given on the command line win.
Status LoadConfig(const std::string& path, bool explicit_path, Options* o, CLI::App& app) {
  if (access(path.c_str(), R_OK) != 0) {
    if (explicit_path) return ErrnoError(path, errno);
    return Status::Ok();
  }
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Error(Code::kUsage, path + ": " + std::string(e.description()));
  }
  auto unset = [&](const char* opt) { return app.get_option_no_throw(opt) == nullptr || app.count(opt) == 0; };
  if (auto v = t["sign_key"].value<std::string>(); v && unset("--sign-key")) o->sign_key = *v;
  if (auto v = t["group_key"].value<std::string>(); v && unset("--group-key")) o->group_key = *v;
  if (auto v = t["serial_file"].value<std::string>(); v && unset("--serial-file")) o->serial_file = *v;
  if (auto v = t["max_size"].value<std::string>(); v && unset("--max-size")) o->max_size = *v;
  if (auto v = t["chunk_size"].value<std::string>(); v && unset("--chunk-size")) o->chunk_size = *v;
  if (auto v = t["chunk_size"].value<int64_t>(); v && unset("--chunk-size")) o->chunk_size = std::to_string(*v);
  if (auto v = t["level"].value<int64_t>(); v && unset("--level")) o->level = static_cast<int>(*v);
  if (auto v = t["delta_level"].value<int64_t>(); v && unset("--delta-level")) o->delta_level = static_cast<int>(*v);
  return Status::Ok();
}

int Fail(const Status& st) {
  log::Error(st);
  return ExitCodeFor(st);
}

Result<PackOptions> MakePackOptions(const Options& o, Type type) {
  PackOptions p;
  p.type = type;
  if (o.serial) p.serial = o.serial;
  p.serial_file = o.serial_file;
  p.job_id = o.job;
  auto ms = ParseSize(o.max_size);
  if (!ms || *ms == 0) return Error(Code::kUsage, "--max-size: not a size: " + o.max_size);
  p.max_size = *ms;
  auto cs = ParseSize(o.chunk_size);
  if (!cs || CheckChunkSizeOption(*cs).code() != Code::kOk)
    return Error(Code::kUsage, "--chunk-size: not 0 or a power of two from 64K to 64M: " + o.chunk_size);
  p.chunk_size = static_cast<uint32_t>(*cs);
  p.level = o.level;
  p.delta_level = o.delta_level;
  p.owners = !o.no_owner;
  if (!o.sign_key.empty()) {
    CM_ASSIGN_OR_RETURN(SigningKey k, LoadSigningKey(o.sign_key));
    p.sign = k;
  }
  if (!o.group_key.empty()) {
    CM_ASSIGN_OR_RETURN(GroupKey k, LoadGroupKey(o.group_key));
    p.encrypt = k;
  }
  return p;
}

// Output "-" (or none): pack into a temporary file, then copy it to stdout.
class StdoutSpool {
 public:
  Status Prepare(std::string* output) {
    if (!output->empty() && *output != "-") return Status::Ok();
    if (IsTerminal(1)) return Error(Code::kUsage, "refusing to write an assignment to a terminal; use -o FILE");
    const char* t = getenv("TMPDIR");
    dir_ = std::string(t && *t ? t : "/tmp") + "/cm-pack-XXXXXX";
    if (!mkdtemp(dir_.data())) return ErrnoError("temporary directory", errno);
    *output = dir_ + "/out.cma";
    path_ = *output;
    return Status::Ok();
  }
  Status Flush(const PackResult& r) {
    if (path_.empty()) return Status::Ok();
    if (r.files.size() != 1) return Error(Code::kUsage, "the job was split into parts; use -o FILE");
    UniqueFd fd(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return ErrnoError(path_, errno);
    char buf[1 << 16];
    for (;;) {
      auto n = ReadFull(fd.get(), buf, sizeof buf);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
      CM_RETURN_IF_ERROR(WriteFull(1, buf, *n));
    }
    return Status::Ok();
  }
  ~StdoutSpool() {
    if (!path_.empty()) unlink(path_.c_str());
    if (!dir_.empty() && dir_.find("XXXXXX") == std::string::npos) rmdir(dir_.c_str());
  }

 private:
  std::string dir_, path_;
};

void Report(const PackResult& r, const Options& o) {
  if (o.json) {
    JsonArray files;
    for (const auto& f : r.files) {
      files.Raw(JsonObject()
                    .Str("path", f.path)
                    .Uint("version", f.header.version())
                    .Str("type", TypeName(f.header.type))
                    .Uint("serial", f.header.serial)
                    .Str("job", f.header.job_id)
                    .Uint("part", f.header.part)
                    .Bool("last_part", f.header.flags & kFlagLastPart)
                    .Uint("data_size", f.header.data_size)
                    .Uint("commands", f.header.command_count)
                    .Bool("signed", f.header.flags & kFlagSigned)
                    .Bool("encrypted", f.header.flags & kFlagEncrypted)
                    .Uint("chunk_size", f.header.chunk_size)
                    .Uint("chunk_count", f.header.chunk_count)
                    .Build());
    }
    std::cout << JsonObject().Raw("files", files.Build()).Uint("entries", r.entries).Uint("raw_bytes", r.raw_bytes).Build()
              << "\n";
    return;
  }
  for (const auto& f : r.files) {
    log::Info(f.path + ": " + TypeName(f.header.type) + " job " + f.header.job_id + " serial " +
              std::to_string(f.header.serial) + " part " + std::to_string(f.header.part) + ", " +
              std::to_string(f.header.command_count) + " commands, " + HumanBytes(f.header.data_size) + " data");
  }
}

int DoPack(Options& o, Type type) {
  if (o.source.empty() && type != Type::kRemove) return Fail(Error(Code::kUsage, "--source DIR is required"));
  if (o.json && (o.output.empty() || o.output == "-"))
    return Fail(Error(Code::kUsage, "--json needs -o FILE (stdout carries the JSON)"));
  auto po = MakePackOptions(o, type);
  if (!po.ok()) return Fail(po.status());
  StdoutSpool spool;
  Status st = spool.Prepare(&o.output);
  if (!st.ok()) return Fail(st);
  po->output = o.output;
  UniqueFd in;
  int fd = 0;
  if (o.delta != "-") {
    in.reset(open(o.delta.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return Fail(ErrnoError(o.delta, errno));
    fd = in.get();
  } else if (IsTerminal(0)) {
    return Fail(Error(Code::kUsage, "reading a delta table from a terminal; pipe cm-delta into cm-pack"));
  }
  FdSource src(fd);
  auto r = PackDeltaTable(&src, o.source, *po);
  if (!r.ok()) {
    Status s = r.status();
    return Fail(Status(s.code(), (o.delta == "-" ? std::string("stdin") : o.delta) + ": " + s.message()));
  }
  st = spool.Flush(*r);
  if (!st.ok()) return Fail(st);
  Report(*r, o);
  return kExitOk;
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
  app.add_option("--config", o.config, "TOML configuration (default /etc/content-mover/pack.toml if present)");

  auto add_common = [&](CLI::App* a) {
    a->add_option("-o,--output", o.output, "Output assignment file ('-' = stdout)");
    a->add_option("--job", o.job, "Job id (1-32 of A-Z a-z 0-9 . _ -; default job-<serial>)");
    a->add_option("--serial", o.serial, "Serial number of the (first) assignment")->check(CLI::PositiveNumber);
    a->add_option("--serial-file", o.serial_file, "File holding the last serial used; advanced under a lock");
    a->add_option("--sign-key", o.sign_key, "Ed25519 signing key (from cm-pack keygen)");
    a->add_option("--group-key", o.group_key, "Encrypt with this group key (from cm-pack keygen --group)");
    a->add_flag("--json", o.json, "Print a JSON summary on stdout");
    a->add_option("--chunk-size", o.chunk_size,
                  "Chunk table (format 2) with chunks of this size, a power of two 64K..64M (default 64K); "
                  "0 writes format 1 without a table");
  };
  auto add_data = [&](CLI::App* a) {
    a->add_option("--max-size", o.max_size, "Split the job into parts above this much data (default 4G)");
    a->add_option("--level", o.level, "zstd level for whole files (default 3)")->check(CLI::Range(1, 22));
    a->add_option("--delta-level", o.delta_level, "zstd level for deltas and small files (default 9)")
        ->check(CLI::Range(1, 22));
    a->add_flag("--no-owner", o.no_owner, "Do not carry file owners");
  };

  // Top level: cm-pack DELTA --source DIR
  app.add_option("delta", o.delta, "Delta table from cm-delta ('-' = stdin)");
  app.add_option("--source", o.source, "The new tree the delta table describes (for whole files)");
  app.add_option("--type", o.type, "publish (default), synchronize, remove or hot");
  add_common(&app);
  add_data(&app);

  auto* replicate = app.add_subcommand("replicate", "Pack a whole tree (a new or resynced server)");
  replicate->add_option("dir", o.dir, "The tree")->required();
  replicate->add_option("--type", o.type, "replicate (default) or restore");
  add_common(replicate);
  add_data(replicate);
  auto* commit = app.add_subcommand("commit", "Commit assignment: switch servers to the staged job");
  add_common(commit);
  auto* rollback = app.add_subcommand("rollback", "Rollback assignment: switch servers back");
  add_common(rollback);
  auto* keygen = app.add_subcommand("keygen", "Make an Ed25519 signing key (FILE, FILE.pub) or a group key");
  keygen->add_option("-o,--output", o.output, "Key file to write")->required();
  keygen->add_flag("--group", o.group, "A 32-byte group key for encryption instead");
  auto* inspect = app.add_subcommand("inspect", "Describe an assignment (header and commands)");
  inspect->add_option("file", o.file, "Assignment")->required();
  inspect->add_option("--pub-key", o.pub_key, "Also check the signature");
  inspect->add_option("--group-key", o.group_key, "Group key for an encrypted assignment");
  inspect->add_flag("--json", o.json, "JSON on stdout");
  auto* verify = app.add_subcommand("verify", "Check hashes and signature; exit 0 when valid");
  verify->add_option("file", o.file, "Assignment")->required();
  verify->add_option("--pub-key", o.pub_key, "Public key the signature must verify with");
  verify->add_option("--group-key", o.group_key, "Group key for an encrypted assignment");
  verify->add_flag("--json", o.json, "JSON on stdout");
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cm-pack: error: %s (try --help)\n", e.what());
    return kExitUsage;
  }
  log::Init("cm-pack", o.quiet ? 0 : 1 + o.verbose);
  std::string cfg = o.config.empty() ? "/etc/content-mover/pack.toml" : o.config;
  CLI::App* active = app.get_subcommands().empty() ? &app : app.get_subcommands()[0];
  Status st = LoadConfig(cfg, !o.config.empty(), &o, *active);
  if (!st.ok()) return Fail(st);

  try {
    if (*keygen) {
      st = o.group ? GenerateGroupKey(o.output) : GenerateSigningKey(o.output);
      if (!st.ok()) return Fail(st);
      log::Info(o.group ? "wrote group key " + o.output : "wrote " + o.output + " and " + o.output + ".pub");
      return kExitOk;
    }
    if (*inspect || *verify) {
      ReaderOptions ro;
      if (!o.pub_key.empty()) {
        auto k = LoadPublicKey(o.pub_key);
        if (!k.ok()) return Fail(k.status());
        ro.pub_key = *k;
      }
      if (!o.group_key.empty()) {
        auto k = LoadGroupKey(o.group_key);
        if (!k.ok()) return Fail(k.status());
        ro.group_key = *k;
      }
      std::string text;
      st = DescribeAssignment(o.file, ro, o.json, &text);
      if (*inspect || o.json) std::cout << text;
      if (!st.ok()) {
        log::Error(o.file + ": " + st.message());
        return ExitCodeFor(st);
      }
      if (*verify && !o.json && IsTerminal(1))
        std::cout << o.file << ": ok" << (ro.pub_key ? " (signature valid)" : " (hashes; no key given)") << "\n";
      return kExitOk;
    }
    if (*commit || *rollback) {
      auto po = MakePackOptions(o, *commit ? Type::kCommit : Type::kRollback);
      if (!po.ok()) return Fail(po.status());
      StdoutSpool spool;
      st = spool.Prepare(&o.output);
      if (!st.ok()) return Fail(st);
      po->output = o.output;
      auto r = PackControl(*po);
      if (!r.ok()) return Fail(r.status());
      st = spool.Flush(*r);
      if (!st.ok()) return Fail(st);
      Report(*r, o);
      return kExitOk;
    }
    if (*replicate) {
      auto t = ParseType(o.type.empty() ? "replicate" : o.type);
      if (!t || !IsWholeTree(*t)) return Fail(Error(Code::kUsage, "--type must be replicate or restore"));
      auto po = MakePackOptions(o, *t);
      if (!po.ok()) return Fail(po.status());
      StdoutSpool spool;
      st = spool.Prepare(&o.output);
      if (!st.ok()) return Fail(st);
      po->output = o.output;
      auto r = PackTree(o.dir, *po);
      if (!r.ok()) return Fail(r.status());
      st = spool.Flush(*r);
      if (!st.ok()) return Fail(st);
      Report(*r, o);
      return kExitOk;
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
