// cm-apply: the content interpreter of a back-end server. Option parsing,
// configuration, output and exit codes only: the work is in lib/apply.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "apply/commands.h"
#include "apply/config.h"
#include "apply/status_view.h"
#include "pack/keys.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/log.h"
#include "util/toml_flags.h"

namespace {

using namespace cm;
using namespace cm::apply;

struct Options {
  std::vector<std::string> files;
  std::string root, config, pub_key, group_key, job;
  int64_t keep = kDefaultKeep;
  uint64_t space_margin = kDefaultSpaceMargin;  // apply.toml only
  bool commit = false, json = false, dry_run = false, quiet = false, allow_unsigned = false;
  int verbose = 0;
};

int Fail(const std::string& where, const Status& st) {
  log::Error(where.empty() ? st.message() : where + ": " + st.message());
  return ExitCodeFor(st);
}

std::string Summary(const Report& r) {
  std::string s = (r.file.empty() ? std::string("") : r.file + ": ") + r.action;
  if (!r.job.empty()) s += " job " + r.job;
  if (r.serial) s += " serial " + std::to_string(r.serial);
  if (r.action == "staged") {
    s += " part " + std::to_string(r.part) + (r.last_part ? " (last)" : "") + ": " + std::to_string(r.stats.created) +
         " created, " + std::to_string(r.stats.patched) + " patched, " + std::to_string(r.stats.removed) +
         " removed, " + std::to_string(r.stats.bytes_written) + " bytes written";
  }
  if (!r.release.empty()) s += " -> " + r.release;
  return s;
}

// Prints reports: JSON lines with --json; one summary line each when stdout
// is a terminal or with -v; nothing otherwise.
void Print(const Outcome& out, const Options& o) {
  for (const Report& r : out.reports) {
    if (o.json) {
      std::printf("%s\n", ReportJson(r).c_str());
    } else if (r.status.ok() && (IsTerminal(1) || o.verbose > 0)) {
      std::printf("%s\n", Summary(r).c_str());
    }
  }
  std::fflush(stdout);
}

// The public key: --pub-key or pub_key = (a missing file is an error), else
// the default CONFIG_DIR/ccm.pub when it exists.
Status LoadKeys(const Options& o, ApplyOptions* ao) {
  std::string pub = o.pub_key;
  ao->pub_key_hint = ConfigDir() + "/" + kDefaultPubKeyName;
  if (pub.empty() && ::access(ao->pub_key_hint.c_str(), F_OK) == 0) pub = ao->pub_key_hint;
  if (!pub.empty()) {
    auto k = pack::LoadPublicKey(pub);
    if (!k.ok()) return k.status();
    ao->pub_key = *k;
  }
  if (!o.group_key.empty()) {
    auto k = LoadGroupKey(o.group_key);
    if (!k.ok()) return k.status();
    ao->group_key = *k;
  }
  return Status::Ok();
}

// apply.toml (lib/apply/config.h) under the flags: each key fills its flag's
// variable unless the flag was given; space_margin has no flag.
Status LoadConfig(const CLI::App& app, const std::string& path, Options* o) {
  auto set = [](const std::string* s) { return [s] { return !s->empty(); }; };
  TomlFlags toml;
  toml.Bind("root", &o->root, app.get_option("--root")).Require(set(&o->root), "a non-empty string")
      .Bind("pub_key", &o->pub_key, app.get_option("--pub-key")).Require(set(&o->pub_key), "a non-empty string")
      .Bind("group_key", &o->group_key, app.get_option("--group-key")).Require(set(&o->group_key), "a non-empty string")
      .Bind("keep", &o->keep, app.get_option("--keep"))
      .Require([o] { return o->keep >= 2 && o->keep <= 1000; }, "an integer from 2 to 1000")
      .Bind("space_margin", &o->space_margin, nullptr);
  return toml.Apply(path);
}

void AddCommon(CLI::App* app, Options* o) {
  app->add_option("--root", o->root, "Content root (ROOT/current is the live tree)");
  app->add_option("--config", o->config, "TOML configuration (default CONFIG_DIR/apply.toml; CONFIG_DIR = $CM_CONFIG_DIR or /etc/content-mover)");
  app->add_option("--pub-key", o->pub_key,
                  "Public key signed assignments must verify with (default: CONFIG_DIR/ccm.pub if present)");
  app->add_flag("--allow-unsigned", o->allow_unsigned, "Also accept unsigned assignments (refused by default)");
  app->add_option("--group-key", o->group_key, "Group key to read encrypted assignments");
  app->add_option("--keep", o->keep, "Releases to keep (current, previous and keep-2 older; default 2)")
      ->check(CLI::Range(2, 1000));
  app->add_flag("--json", o->json, "Print a JSON report per assignment (status: one JSON object)");
  app->add_flag("-q,--quiet", o->quiet, "Errors only");
  app->add_flag("-v,--verbose", o->verbose, "More messages (repeat for debug)");
}

}  // namespace

int main(int argc, char** argv) {
  InstallTempCleanup();
  Options o;
  CLI::App app{"cm-apply: verify Content Mover assignments, stage them beside the live tree, and switch the "
               "live tree atomically (commit) or back (rollback).\n"
               "  cm-apply [apply] FILE... --root DIR [--commit] [--pub-key F | --allow-unsigned]\n"
               "  cm-apply commit --root DIR [--job J]\n"
               "  cm-apply rollback --root DIR\n"
               "  cm-apply status --root DIR [--json]\n"
               "  cm-apply verify FILE... [--pub-key F]",
               "cm-apply"};
  app.set_version_flag("--version", std::string("cm-apply ") + CM_VERSION);
  AddCommon(&app, &o);
  app.add_option("files", o.files, "Assignment files ('-' = standard input)");
  app.add_flag("--commit", o.commit, "Commit the job once its last part is staged");
  app.add_flag("--dry-run", o.dry_run, "Verify and check the order only; change nothing");

  CLI::App* apply = app.add_subcommand("apply", "Verify and stage assignments (the default)");
  apply->add_option("files", o.files, "Assignment files ('-' = standard input)");
  apply->add_flag("--commit", o.commit, "Commit the job once its last part is staged");
  apply->add_flag("--dry-run", o.dry_run, "Verify and check the order only; change nothing");
  CLI::App* commit = app.add_subcommand("commit", "Switch the live tree to the staged tree of a job");
  commit->add_option("--job", o.job, "Job to commit (default: the staged job)");
  CLI::App* rollback = app.add_subcommand("rollback", "Switch the live tree back to the previous release");
  CLI::App* status = app.add_subcommand("status", "Show current, previous, staged job and the last report");
  CLI::App* verify = app.add_subcommand("verify", "Verify assignments (format, hashes, signature) only");
  verify->add_option("files", o.files, "Assignment files")->required();
  for (CLI::App* sub : {apply, commit, rollback, status, verify}) sub->fallthrough();
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    log::Init("cm-apply", 1);
    log::Error(e.what());
    return kExitUsage;
  }
  log::Init("cm-apply", o.quiet ? 0 : 1 + o.verbose);

  const std::string config_path = o.config.empty() ? ConfigDir() + "/" + kDefaultConfigName : o.config;
  if (!o.config.empty() || ::access(config_path.c_str(), F_OK) == 0)
    if (Status st = LoadConfig(app, config_path, &o); !st.ok()) return Fail("", st);

  ApplyOptions ao;
  ao.dry_run = o.dry_run;
  ao.allow_unsigned = o.allow_unsigned;
  ao.space_margin = o.space_margin;
  if (Status st = LoadKeys(o, &ao); !st.ok()) return Fail("", st);
  RootOptions ro;
  ro.keep = static_cast<int>(o.keep);

  if (verify->parsed()) {
    Outcome out = RunVerify(o.files, ao);
    Print(out, o);
    return out.status.ok() ? kExitOk : Fail(out.where, out.status);
  }
  if (o.root.empty()) return Fail("", Status(Code::kUsage, "no content root: give --root DIR or root = in the config"));
  if (status->parsed()) {
    auto v = ReadStatus(o.root);
    if (!v.ok()) return Fail("", v.status());
    std::printf("%s", o.json ? (StatusJson(*v) + "\n").c_str() : StatusText(*v).c_str());
    return kExitOk;
  }
  Outcome out;
  if (commit->parsed()) {
    out = RunCommit(o.root, o.job, ro);
  } else if (rollback->parsed()) {
    out = RunRollback(o.root, ro);
  } else {
    if (o.files.empty()) return Fail("", Status(Code::kUsage, "no assignment file given (see --help)"));
    ApplyRequest req;
    req.root = o.root;
    req.files = o.files;
    req.commit = o.commit;
    req.opts = ao;
    req.root_opts = ro;
    out = RunApply(req);
  }
  Print(out, o);
  return out.status.ok() ? kExitOk : Fail(out.where, out.status);
}
