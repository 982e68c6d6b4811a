// `cm-push relay`: options, relay.toml, signals. See relay_cli.h.
#include "relay_cli.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <csignal>
#include <cstdio>
#include <string>
#include <variant>

#include "jobrun/job_commands.h"
#include "jobrun/job_edge.h"
#include "pack/keys.h"
#include "util/group_key.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/log.h"
#include "util/toml_flags.h"

namespace cm {
namespace {

int Fail(const Status& st) {
  log::Error(st.message());
  return ExitCodeFor(st);
}

// relay.toml (man cm-push(1)): each key is the long flag with '_' for '-';
// util/toml_flags.h layers it under the flags.
Status LoadRelayConfig(const std::string& path, const CLI::App& cmd, RelayCli* cli) {
  pushrun::RelayOptions* r = &cli->r;
  const std::pair<const char*, TomlFlags::Target> keys[] = {
      {"name", &r->name},         {"listen", &r->listen},         {"url", &r->url},
      {"spool", &r->spool},       {"root", &r->root},             {"iface", &r->iface},
      {"pub_key", &r->pub_key},   {"group_key", &r->group_key},   {"allow_unsigned", &r->allow_unsigned},
      {"mcast_rate", &r->mcast_rate}, {"cm_apply", &r->cm_apply}, {"cm_mcast", &r->cm_mcast},
      {"member_wait", &r->member_wait_s}, {"member_retry", &r->member_retry_s},
      {"spool_keep", &r->spool_keep},     {"leader_state", &r->leader_state}, {"metrics", &r->metrics},
      {"job_hook", &cli->job_hooks}};
  TomlFlags toml;
  for (const auto& [key, var] : keys) {
    std::string flag = std::string("--") + key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    toml.Bind(key, var, cmd.get_option(flag));
    if (double* const* seconds = std::get_if<double*>(&var))
      toml.Require([s = *seconds] { return *s >= 0; }, "a number of seconds >= 0");
    if (int* const* keep = std::get_if<int*>(&var)) toml.Require([k = *keep] { return *k >= 1; }, "an integer >= 1");
  }
  return toml.Apply(path);
}

}  // namespace

CLI::App* AddRelayCommand(CLI::App& app, RelayCli* cli) {
  pushrun::RelayOptions& r = cli->r;
  CLI::App* relay = app.add_subcommand("relay", "Run the relay daemon of this server");
  relay->add_option("--config", cli->config, "TOML configuration; flags override it (default CONF/relay.toml if it exists)");
  relay->add_option("--name", r.name, "This server's name, as in the sites file (default: host name)");
  relay->add_option("--listen", r.listen, "HTTP ADDR:PORT (default 0.0.0.0:7710)");
  relay->add_option("--url", r.url, "URL others reach this relay at (default http://LISTEN)");
  relay->add_option("--spool", r.spool, "Directory for assignments (resumes from here)");
  relay->add_option("--root", r.root, "Content root cm-apply stages into");
  relay->add_option("--iface", r.iface, "Multicast interface address (default: the listen address)");
  relay->add_option("--pub-key", r.pub_key, "The CCM's public key: orders and assignments (default CONF/ccm.pub)");
  relay->add_option("--group-key", r.group_key, "Group key: reports and cm-mcast (default CONF/group.key)");
  relay->add_flag("--allow-unsigned", r.allow_unsigned, "Also accept unsigned assignments (orders never)");
  relay->add_option("--mcast-rate", r.mcast_rate, "cm-mcast --rate for the site multicast");
  relay->add_option("--cm-apply", r.cm_apply, "cm-apply program (default: beside cm-push, else PATH)");
  relay->add_option("--cm-mcast", r.cm_mcast, "cm-mcast program (default: beside cm-push, else PATH)");
  relay->add_option("--member-wait", r.member_wait_s, "Seconds a leader waits for its members (default 300)");
  relay->add_option("--member-retry", r.member_retry_s,
                    "Seconds a leader keeps trying a member it cannot reach before reporting it failed (default 5)");
  relay->add_option("--spool-keep", r.spool_keep, "Serials whose files the spool keeps, never one in use (default 10)");
  relay->add_option("--leader-state", r.leader_state,
                    "cm-leader's state file, for /v1/status (default /run/content-mover/leader.json)");
  relay->add_option("--metrics", r.metrics, "node_exporter textfile written every 10 s and at each transfer's end");
  relay->add_option("--job-hook", cli->job_hooks,
                    "NAME=PROGRAM [ARGS]: what a job's 'hook NAME' command runs here (repeatable; job_hook = [...])");
  cli->cmd = relay;
  return relay;
}

int RunRelay(RelayCli& cli) {
  pushrun::RelayOptions& r = cli.r;
  if (cli.config.empty()) cli.config = DefaultFile("", "relay.toml");
  if (!cli.config.empty())
    if (Status st = LoadRelayConfig(cli.config, *cli.cmd, &cli); !st.ok()) return Fail(st);
  if (!(r.member_wait_s >= 0) || !(r.member_retry_s >= 0))
    return Fail(Error(Code::kUsage, "relay: --member-wait and --member-retry take seconds >= 0"));
  if (r.spool_keep < 1) return Fail(Error(Code::kUsage, "relay: --spool-keep takes an integer >= 1"));
  r.pub_key = DefaultFile(r.pub_key, "ccm.pub");
  r.group_key = DefaultFile(r.group_key, "group.key");
  if (r.name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    r.name = host;
  }
  if (r.spool.empty()) return Fail(Error(Code::kUsage, "relay: --spool DIR is required (or spool = in the config)"));
  // A job's commands (docs/protocol/jobs.md, "Commands"): the fixed set, run
  // with this relay's cm-apply, root and keys, and the hooks it names.
  jobrun::JobCommandOptions co;
  co.cm_apply = r.cm_apply;
  co.root = r.root;
  co.pub_key = r.pub_key;
  co.allow_unsigned = r.allow_unsigned;
  for (const std::string& h : cli.job_hooks)
    if (Status st = jobrun::AddJobHook(h, &co); !st.ok()) return Fail(st);
  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait below takes them: TERM/INT stop, HUP is logged and ignored
  // (there is nothing to reload: restart to change settings).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Job mode (a draft, docs/protocol/jobs.md): its edge answers the job paths.
  auto job_edge_at = std::make_shared<std::atomic<jobrun::JobEdge*>>(nullptr);
  r.extra_handler = [job_edge_at](const http::Request& req, http::Response* out) {
    if (!jobrun::JobEdge::Owns(req.path())) return false;
    jobrun::JobEdge* e = job_edge_at->load();
    *out = e ? e->Handle(req) : http::Response::Json(503, R"({"error":"starting"})");
    return true;
  };
  auto relay = pushrun::Relay::Start(r);
  if (!relay.ok()) return Fail(relay.status());
  auto pub = pack::LoadPublicKey(r.pub_key);
  if (!pub.ok()) return Fail(pub.status());
  jobrun::JobEdgeOptions jo;
  jo.name = r.name;
  jo.url = (*relay)->url();
  jo.dir = r.spool + "/jobs";
  jo.key = *pub;
  auto group = LoadGroupKey(r.group_key);
  if (!group.ok()) return Fail(group.status());
  jo.group_key = *group;
  jo.run_command = [co](const jobrun::JobCommand& c, const std::atomic<bool>* cancel) {
    return jobrun::RunJobCommand(co, c, cancel);
  };
  auto job_edge = jobrun::JobEdge::Start(jo);
  if (!job_edge.ok()) return Fail(job_edge.status());
  job_edge_at->store(job_edge->get());
  log::UseTimestamps(true);  // running: a daemon's log lines carry the time (not under journald)
  char settings[200];
  std::snprintf(settings, sizeof settings, " (member wait %gs, retry %gs; spool keeps %d serials; unsigned assignments %s)",
                r.member_wait_s, r.member_retry_s, r.spool_keep, r.allow_unsigned ? "accepted" : "refused");
  log::Info("relay " + r.name + " listening at " + (*relay)->url() + settings +
            (cli.config.empty() ? "" : "; config " + cli.config));
  for (int sig = 0; sigwait(&set, &sig) == 0 && sig == SIGHUP;)
    log::Warn("SIGHUP ignored: the relay has nothing to reload (restart it to change its settings)");
  job_edge_at->store(nullptr);
  (*job_edge)->Stop();
  (*relay)->Stop();
  return kExitOk;
}


}  // namespace cm
