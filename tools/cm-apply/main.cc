// cm-apply: the content interpreter of a back-end server. Option parsing,
// configuration, output and exit codes only: the work is in lib/apply.
#include <sys/time.h>
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
  std::string root, root_arg, config, pub_key, group_key, job, to_release;
  int64_t keep = kDefaultKeep, report_keep = kDefaultReportKeep, hook_timeout = kDefaultHookTimeout.count();
  uint64_t space_margin = kDefaultSpaceMargin;  // apply.toml only
  std::vector<std::string> pre_commit, post_commit;
  std::string pre_flag, post_flag;
  std::optional<uint64_t> reset_to;
  bool commit = false, json = false, dry_run = false, quiet = false, allow_unsigned = false, full = false;
  int verbose = 0;
};

int Fail(const std::string& where, const Status& st) {
  const std::string line = where.empty() ? st.message() : where + ": " + st.message();
  // The switch is done: a warning (also with -q: it is the one line that
  // says why the exit status is not 0), and its own exit status.
  if (st.code() == Code::kHookFailed) std::fprintf(stderr, "cm-apply: warning: %s\n", line.c_str());
  else log::Error(line);
  return ExitCodeFor(st);
}

// Reports: JSON lines with --json; one summary line each when stdout is a
// terminal or with -v; nothing otherwise.
void Print(const Outcome& out, const Options& o) {
  for (const Report& r : out.reports) {
    if (o.json) {
      std::printf("%s\n", ReportJson(r).c_str());
    } else if ((r.status.ok() || r.status.code() == Code::kHookFailed) && (IsTerminal(1) || o.verbose > 0)) {
      std::printf("%s\n", ReportSummary(r).c_str());
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
  auto argv = [](const std::vector<std::string>* v) { return [v] { return v->empty() || !v->front().empty(); }; };
  TomlFlags toml;
  toml.Bind("root", &o->root, app.get_option("--root")).Require(set(&o->root), "a non-empty string")
      .Bind("pub_key", &o->pub_key, app.get_option("--pub-key")).Require(set(&o->pub_key), "a non-empty string")
      .Bind("group_key", &o->group_key, app.get_option("--group-key")).Require(set(&o->group_key), "a non-empty string")
      .Bind("keep", &o->keep, app.get_option("--keep"))
      .Require([o] { return o->keep >= 2 && o->keep <= 1000; }, "an integer from 2 to 1000")
      .Bind("space_margin", &o->space_margin, nullptr)
      .Bind("report_keep", &o->report_keep, nullptr)
      .Require([o] { return o->report_keep >= 1 && o->report_keep <= 1000000; }, "an integer from 1 to 1000000")
      .Bind("pre_commit", &o->pre_commit, app.get_option("--pre-commit"))
      .Require(argv(&o->pre_commit), "an array of strings, the program first")
      .Bind("post_commit", &o->post_commit, app.get_option("--post-commit"))
      .Require(argv(&o->post_commit), "an array of strings, the program first")
      .Bind("hook_timeout", &o->hook_timeout, app.get_option("--hook-timeout"))
      .Require([o] { return o->hook_timeout >= 1 && o->hook_timeout <= 86400; }, "seconds from 1 to 86400");
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
  app->add_option("--pre-commit", o->pre_flag, "Program run before every commit and rollback; failing refuses it (pre_commit = [argv] in the config)");
  app->add_option("--post-commit", o->post_flag, "Program run after every commit and rollback (post_commit = [argv])");
  app->add_option("--hook-timeout", o->hook_timeout, "Seconds a hook may run before its process group is killed (default 60)")
      ->check(CLI::Range(1, 86400));
  app->add_flag("--json", o->json, "Print a JSON report per assignment (status: one JSON object)");
  app->add_flag("-q,--quiet", o->quiet, "Errors only");
  app->add_flag("-v,--verbose", o->verbose, "More messages (repeat for debug)");
}

uint64_t NowMicros() {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  return static_cast<uint64_t>(tv.tv_sec) * 1000000u + static_cast<uint64_t>(tv.tv_usec);
}

}  // namespace

int main(int argc, char** argv) {
  InstallTempCleanup();
  Options o;
  CLI::App app{"cm-apply: verify Content Mover assignments, stage them beside the live tree, and switch the "
               "live tree atomically (commit) or back (rollback).\n"
               "  cm-apply [apply] FILE... --root DIR [--commit] [--pub-key F | --allow-unsigned]\n"
               "  cm-apply commit [ROOT] [--job J]\n"
               "  cm-apply rollback [ROOT] [--to-release NAME]\n"
               "  cm-apply status [ROOT] [--json]\n"
               "  cm-apply reset-serial [ROOT] [--to N]\n"
               "  cm-apply verify FILE... [--pub-key F]\n"
               "  cm-apply verify-live [ROOT] [--full] [--json]\n"
               "(ROOT: the content root, or --root DIR, or root = in the config)",
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
  CLI::App* rollback = app.add_subcommand("rollback", "Switch the live tree back to the previous release, or to one");
  rollback->add_option("--to-release", o.to_release, "The release to switch to (s<serial>-<job>, as status shows)");
  CLI::App* status = app.add_subcommand("status", "Show current, previous, staged job and the last report");
  CLI::App* reset = app.add_subcommand("reset-serial", "Lower the last applied serials (a server stuck behind a bad serial)");
  reset->add_option("--to", o.reset_to, "The serial to reset to (default: the newest not in the future)");
  CLI::App* verify = app.add_subcommand("verify", "Verify assignments (format, hashes, signature) only");
  verify->add_option("files", o.files, "Assignment files")->required();
  CLI::App* vlive = app.add_subcommand("verify-live", "Check that the live tree is its release (exit 8 if not)");
  vlive->add_flag("--full", o.full, "Read every file (default: only files whose size, mtime or inode changed)");
  for (CLI::App* sub : {commit, rollback, status, reset, vlive}) sub->add_option("ROOT", o.root_arg, "The content root");
  for (CLI::App* sub : {apply, commit, rollback, status, reset, verify, vlive}) sub->fallthrough();
  app.require_subcommand(0, 1);

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    log::Init("cm-apply", 1);
    log::Error(e.what());
    return kExitUsage;
  }
  log::Init("cm-apply", o.quiet ? 0 : 1 + o.verbose);
  if (!o.root_arg.empty()) {
    if (!o.root.empty() && o.root != o.root_arg) return Fail("", Status(Code::kUsage, "two content roots given (ROOT and --root)"));
    o.root = o.root_arg;
  }
  if (!o.pre_flag.empty()) o.pre_commit = {o.pre_flag};
  if (!o.post_flag.empty()) o.post_commit = {o.post_flag};

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
  ro.report_keep = static_cast<int>(o.report_keep);
  ro.hooks.pre_commit = o.pre_commit;
  ro.hooks.post_commit = o.post_commit;
  ro.hooks.timeout = std::chrono::seconds(o.hook_timeout);

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
  if (vlive->parsed()) {
    auto t = VerifyLive(o.root, o.full, ro);
    if (!t.ok()) return Fail("", t.status());
    std::printf("%s", o.json ? (LiveJson(*t) + "\n").c_str() : o.quiet ? "" : LiveText(*t).c_str());
    return t->ok() ? kExitOk : kExitBaseMismatch;
  }
  if (reset->parsed()) {
    auto r = ResetSerials(o.root, o.reset_to, NowMicros(), ro);
    if (!r.ok()) return Fail("", r.status());
    std::printf("%s: last serials were %llu (staging) and %llu (commit/rollback), now %llu\n", o.root.c_str(),
                static_cast<unsigned long long>(r->old_stage), static_cast<unsigned long long>(r->old_switch),
                static_cast<unsigned long long>(r->serial));
    return kExitOk;
  }
  Outcome out;
  if (commit->parsed()) {
    out = RunCommit(o.root, o.job, ro);
  } else if (rollback->parsed()) {
    out = RunRollback(o.root, o.to_release, ro);
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
