#include "jobrun/job_commands.h"

#include "util/command_template.h"
#include "util/subprocess.h"

namespace cm::jobrun {

namespace {

bool NameOk(const std::string& n) {
  if (n.empty() || n.size() > 64) return false;
  for (char c : n) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

Status Run(const JobCommandOptions& opts, const std::vector<std::string>& argv, const std::string& what,
           const std::atomic<bool>* cancel, std::vector<std::string> env = {}) {
  ProcessOptions po;
  po.timeout = opts.timeout;
  po.cancel = cancel;
  po.env = std::move(env);
  auto r = RunProcess(argv, po);
  if (!r.ok()) return Error(Code::kFailure, what + ": " + r.status().message());
  if (r->timed_out) return Error(Code::kFailure, what + ": timed out after " + std::to_string(opts.timeout.count()) + " s");
  if (r->exit_code != 0) {
    std::string line = LastLine(r->err);
    return Error(Code::kFailure,
                 what + ": exit " + std::to_string(r->exit_code) + (line.empty() ? std::string() : ": " + line));
  }
  return Status::Ok();
}

}  // namespace

Status AddJobHook(const std::string& spec, JobCommandOptions* opts) {
  size_t eq = spec.find('=');
  std::string name = eq == std::string::npos ? spec : spec.substr(0, eq);
  if (!NameOk(name)) return Error(Code::kUsage, "job hook '" + spec + "': NAME=PROGRAM, NAME of [A-Za-z0-9._-]");
  if (eq == std::string::npos) return Error(Code::kUsage, "job hook '" + spec + "': no program after '='");
  auto argv = SplitCommand(spec.substr(eq + 1));
  if (!argv.ok()) return Error(Code::kUsage, "job hook '" + spec + "': " + argv.status().message());
  opts->hooks[name] = std::move(argv).value();
  return Status::Ok();
}

Status RunJobCommand(const JobCommandOptions& opts, const JobCommand& c, const std::atomic<bool>* cancel) {
  const bool content = c.name == "stage" || c.name == "commit" || c.name == "rollback";
  if (content && opts.root.empty()) return Error(Code::kUsage, c.name + ": this relay has no content root (--root)");
  if (c.name == "stage") {
    if (c.items.empty()) return Error(Code::kUsage, "stage: no assignment queued since the last stage");
    std::vector<std::string> argv{opts.cm_apply};
    for (const JobItemRef& it : c.items) argv.push_back(it.path);
    argv.insert(argv.end(), {"--root", opts.root, "-q"});
    if (!opts.pub_key.empty()) argv.insert(argv.end(), {"--pub-key", opts.pub_key});
    if (opts.allow_unsigned) argv.push_back("--allow-unsigned");
    return Run(opts, argv, "stage", cancel);
  }
  if (c.name == "commit") return Run(opts, {opts.cm_apply, "commit", "--root", opts.root, "-q"}, "commit", cancel);
  if (c.name == "rollback") {
    std::vector<std::string> argv{opts.cm_apply, "rollback", "--root", opts.root, "-q"};
    if (!c.arg.empty()) {
      if (!NameOk(c.arg)) return Error(Code::kUsage, "rollback: bad release name");
      argv.insert(argv.end(), {"--to-release", c.arg});
    }
    return Run(opts, argv, "rollback", cancel);
  }
  if (c.name == "hook") {
    auto it = opts.hooks.find(c.arg);
    if (it == opts.hooks.end()) return Error(Code::kUsage, "hook: no hook named '" + c.arg + "' on this relay");
    return Run(opts, it->second, "hook " + c.arg, cancel,
               {"CM_JOB=" + c.job, "CM_ENTRY=" + std::to_string(c.entry), "CM_ROOT=" + opts.root});
  }
  return Error(Code::kUsage, "unknown command '" + c.name + "'");
}

}  // namespace cm::jobrun
