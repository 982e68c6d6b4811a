#include "pushrun/converge_run.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "apply/layout.h"
#include "ckpt/store.h"
#include "ckpt/sync_table.h"
#include "pack/keys.h"
#include "push/converge.h"
#include "push/sites.h"
#include "pushrun/auth_edge.h"
#include "pushrun/joined.h"
#include "pushrun/live_tree.h"
#include "pushrun/site_probe.h"
#include "util/config_dir.h"
#include "util/exit_codes.h"
#include "util/file_util.h"
#include "util/group_key.h"
#include "util/json_value.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::pushrun {

namespace {

// A pseudo-server name for the CCM's own shadow copy in a plan.
constexpr const char* kShadowName = " shadow";

bool ParseHashHex(const std::string& hex, Hash256* out) {
  return hex.size() == 64 && FromHex(hex, out->data(), out->size());
}
std::string NonZeroHex(const std::string& hex) {
  Hash256 h;
  return ParseHashHex(hex, &h) && h != Hash256{} ? hex : std::string();
}

struct Shadow {
  std::string release, tree;
  uint64_t serial = 0;
};
std::optional<Shadow> ReadShadow(const std::string& root) {
  if (root.empty()) return std::nullopt;
  apply::Layout l(root);
  auto cur = apply::ReadCurrent(l);
  if (!cur.ok() || cur->empty()) return std::nullopt;
  return Shadow{*cur, l.Release(*cur), apply::ReleaseSerial(*cur)};
}

std::string Join(const std::vector<std::string>& v, size_t max = 6) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < max; ++i) out += (i ? "," : "") + v[i];
  if (v.size() > max) out += ",...";
  return out;
}

std::string SerialFile(const PushOptions& o) {
  return !o.serial_file.empty() ? o.serial_file : o.state_dir.empty() ? "" : o.state_dir + "/serial";
}

// Packs one catch-up: a synchronize from `have` (+ unknown paths), or the
// whole tree.
Status PackCatchUp(const PushOptions& opts, const push::CatchUpGroup& g, const delta::Manifest& want,
                   const std::string& want_hex, const delta::Manifest* have, const std::string& from_release,
                   const std::string& tree, const std::string& job, uint64_t serial, bool encrypt,
                   const std::string& out_dir, std::string* cma) {
  *cma = out_dir + "/" + job + ".cma";
  std::vector<std::string> argv{opts.cm_pack};
  if (g.kind == push::CatchUp::kSync) {
    const std::string table = out_dir + "/" + job + ".cmdt";
    {
      int fd = ::open(table.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return ErrnoError(table, errno);
      UniqueFd guard(fd);
      FdSink sink(fd);
      std::set<std::string> unknown(g.unknown_paths.begin(), g.unknown_paths.end());
      auto st = ckpt::WriteSyncTable(want, *have, unknown, &sink);
      if (!st.ok()) return st.status();
    }
    argv.insert(argv.end(), {table, "--source", tree, "--type", "synchronize", "--base-release", from_release,
                             "--base-manifest", "none", "--result-manifest", want_hex});
  } else {
    argv.insert(argv.end(), {"replicate", tree});
  }
  argv.insert(argv.end(), {"--job", job, "-o", *cma, "-q"});
  if (!opts.sign_key.empty()) argv.insert(argv.end(), {"--sign-key", opts.sign_key});
  if (encrypt && !opts.group_key.empty()) argv.insert(argv.end(), {"--group-key", opts.group_key});
  if (serial) argv.insert(argv.end(), {"--serial", std::to_string(serial)});
  else if (!SerialFile(opts).empty()) argv.insert(argv.end(), {"--serial-file", SerialFile(opts)});
  auto r = RunProcess(argv);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Error(Code::kFailure, "cm-pack (catch-up " + job + "): " + LastLine(r->err));
  return Status::Ok();
}

std::string PubKeyOf(const PushOptions& opts) {
  std::string pub = opts.sign_key + ".pub";
  if (::access(pub.c_str(), R_OK) == 0) return pub;
  return DefaultFile("", "ccm.pub");
}

// The shadow copy takes the same catch-up, with cm-apply here.
Status ApplyToShadow(const PushOptions& opts, const std::string& cma) {
  std::vector<std::string> argv{opts.cm_apply, cma, "--root", opts.shadow, "--commit", "-q"};
  if (std::string pub = PubKeyOf(opts); !pub.empty()) argv.insert(argv.end(), {"--pub-key", pub});
  auto r = RunProcess(argv);
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Error(static_cast<Code>(r->exit_code), "shadow copy: " + LastLine(r->err));
  return Status::Ok();
}

}  // namespace

std::string CheckpointDir(const std::string& state_dir) { return state_dir + "/checkpoints"; }

Result<AssignmentBase> InspectBase(const std::string& cm_pack, const std::string& file) {
  auto r = RunProcess({cm_pack, "inspect", file, "--json"});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) return Error(Code::kFailure, "cm-pack inspect: " + LastLine(r->err));
  auto v = ParseJson(r->out);
  if (!v.ok() || !v->is_object()) return Error(Code::kCorrupt, "cm-pack inspect --json: not one JSON object");
  AssignmentBase b;
  const JsonValue& h = (*v)["header"].is_object() ? (*v)["header"] : *v;
  b.job = h.Str("job", v->Str("job"));
  b.type = h.Str("type", v->Str("type"));
  b.serial = h.Uint("serial", v->Uint("serial"));
  b.encrypted = h.Bool("encrypted");
  const JsonValue& base = (*v)["base"];
  if (base.is_object()) {
    b.release = base.Str("release");
    b.manifest = NonZeroHex(base.Str("manifest"));
    b.result = NonZeroHex(base.Str("result_manifest"));
  }
  return b;
}


Result<std::string> BaseReleaseOf(const PushOptions& opts, const AssignmentBase& first) {
  if (opts.state_dir.empty() || opts.assignments.empty()) return std::string();
  const AssignmentBase* b = &first;
  if (b->manifest.empty()) return std::string();
  Hash256 base_hash;
  ParseHashHex(b->manifest, &base_hash);
  auto store = ckpt::Store::Open(CheckpointDir(opts.state_dir));
  if (!store.ok()) return store.status();
  std::optional<std::string> found = (*store)->FindByManifest(base_hash);
  // The CCM's newest tree: the shadow's current release (stored as a
  // checkpoint if it is not yet: a first run, or checkpoints were off), else
  // the newest checkpoint.
  std::optional<Hash256> newest;
  std::string newest_name;
  if (auto sh = ReadShadow(opts.shadow)) {
    ckpt::AddOptions ao;
    ao.cache_same_device = true;
    auto added = (*store)->Add(sh->release, sh->serial, sh->tree, ao);
    if (!added.ok()) return added.status();
    newest = added->info.manifest;
    newest_name = sh->release;
  } else if (auto all = (*store)->List(); all.ok() && !all->empty()) {
    newest = all->front().manifest;
    newest_name = all->front().release;
  }
  if (!found && newest && *newest == base_hash) found = newest_name;
  if (!found) {
    if (opts.verbosity > 0)
      log::Info("no checkpoint of the base of " + opts.assignments.front() + " (" +
                (b->release.empty() ? "manifest " + b->manifest.substr(0, 16) : b->release) +
                "): servers on another tree will refuse it (exit 8); --shadow keeps checkpoints");
    return std::string();
  }
  // Servers catch up only to the CCM's newest tree: a job packed against an
  // older one (an old job run again) must not take servers back.
  if (newest && *newest != base_hash) {
    if (opts.verbosity > 1)
      log::Info(opts.assignments.front() + " applies to " + *found + ", not the CCM's newest release " + newest_name +
                ": no catch-up");
    return std::string();
  }
  return *found;
}

Result<ConvergeSummary> ConvergeTo(const PushOptions& opts, const std::string& want_release,
                                   const ConvergeJob& cj) {
  const uint64_t below_serial = cj.below_serial;
  ConvergeSummary sum;
  auto store_r = ckpt::Store::Open(CheckpointDir(opts.state_dir));
  if (!store_r.ok()) return store_r.status();
  ckpt::Store& store = **store_r;
  auto want = store.LoadManifest(want_release);
  if (!want.ok()) return want.status();
  const std::string want_hex = ToHex(delta::ManifestHash(*want));

  auto sites = push::LoadSites(opts.sites_file);
  if (!sites.ok()) return sites.status();
  CM_RETURN_IF_ERROR(MergeJoined(&*sites, opts.state_dir));
  CM_RETURN_IF_ERROR(push::RestrictToOnly(&*sites, opts.only, opts.sites_file));
  auto sign = pack::LoadSigningKey(opts.sign_key);
  if (!sign.ok()) return sign.status();
  auto group = LoadGroupKey(opts.group_key);
  if (!group.ok()) return group.status();
  AuthEdge auth(NewCcmId(), *sign, std::nullopt, *group);
  ProbeOptions po;
  po.live = true;
  auto answers = ProbeSites(*sites, auth, po);
  // A server its site's cm-leader lists and the sites file does not: from
  // now on a server of that site (recorded), converged like any other.
  if (std::vector<JoinedServer> joined = FindJoiners(*sites, answers); !joined.empty()) {
    for (const JoinedServer& j : joined)
      log::Info("server " + j.name + " (" + j.address + ") joined site " + j.site +
                " (its cm-leader membership); recorded in " + opts.state_dir + "/joined.json");
    CM_RETURN_IF_ERROR(RecordJoined(opts.state_dir, joined));
    CM_RETURN_IF_ERROR(MergeJoined(&*sites, opts.state_dir));
    answers = ProbeSites(*sites, auth, po);
  }

  std::vector<push::ServerTree> in;
  for (const auto& site : sites->sites)
    for (const auto& s : site.servers) {
      const ProbeAnswer& a = answers[s.name];
      in.push_back({s.name, a.up, a.live});
    }
  // The shadow copy converges with the servers (a restore moves it too).
  const bool with_shadow = !opts.shadow.empty() && opts.only.empty();
  if (with_shadow) {
    LiveTreeProbe probe(opts.cm_apply, opts.shadow);
    in.push_back({kShadowName, true, probe.Get()});
  }
  auto known = [&](const std::string& hex) {
    Hash256 h;
    return ParseHashHex(hex, &h) && store.FindByManifest(h).has_value();
  };
  // Servers that already run the job that follows (a rerun) are ready too.
  push::ConvergePlan plan = push::PlanConvergence(in, want_hex, known, cj.done_manifest);
  std::erase(plan.ready, std::string(kShadowName));  // the summary counts servers
  std::erase(plan.unknown, std::string(kShadowName));
  sum.ready = plan.ready.size();
  sum.unknown = plan.unknown.size();
  if (!plan.unknown.empty() && opts.verbosity > 1)
    log::Info("live tree unknown (down or an older relay): " + Join(plan.unknown));
  if (plan.groups.empty()) return sum;
  if (opts.verbosity > 0)
    log::Info("converging " + std::to_string(plan.CatchUpCount()) + " server(s) to " + want_release + " (" +
              std::to_string(plan.groups.size()) + " catch-up job(s)); " + std::to_string(plan.ready.size()) +
              " already run it");

  // A private work directory under the state directory (same file system as
  // the store: reflinks where possible).
  std::string dir = opts.state_dir + "/converge-XXXXXX";
  if (!::mkdtemp(dir.data())) return ErrnoError(dir, errno);
  struct Cleanup {
    std::string d;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  } cleanup{dir};
  const std::string tree = dir + "/tree";
  CM_RETURN_IF_ERROR(store.Materialize(want_release, tree));

  std::string base_job = cj.name;
  const bool encrypt = cj.encrypt;
  if (base_job.size() > 26) base_job.resize(26);
  for (size_t i = 0; i < plan.groups.size(); ++i) {
    const push::CatchUpGroup& g = plan.groups[i];
    const std::string job = base_job + ".c" + std::to_string(i + 1);
    delta::Manifest have;
    std::string from_release;
    if (g.kind == push::CatchUp::kSync && g.from_manifest != push::EmptyManifestHex()) {
      Hash256 h;
      ParseHashHex(g.from_manifest, &h);
      from_release = store.FindByManifest(h).value_or("");
      auto m = store.LoadManifest(from_release);
      if (!m.ok()) return m.status();
      have = std::move(*m);
    }
    // Its stage serial: below the job that follows, above what the group applied.
    uint64_t serial = 0;
    if (below_serial) {
      // 1024 serials per catch-up when there is room (a whole tree over
      // cm-pack's --max-size is several parts), else 1.
      uint64_t max_last = 0;
      for (const auto& gg : plan.groups) max_last = std::max(max_last, gg.last_serial);
      const uint64_t stride = below_serial > max_last + 1024 * (plan.groups.size() + 1) ? 1024 : 1;
      const uint64_t room = (plan.groups.size() - i) * stride;
      if (below_serial <= room || below_serial - room <= g.last_serial) {
        log::Warn(job + ": no serial between " + std::to_string(g.last_serial) + " (applied by " + Join(g.servers) +
                  ") and " + std::to_string(below_serial) + " (this job's): not caught up (serial files and clock "
                  "serials leave room; small --serial numbers do not)");
        sum.failed += g.servers.size();
        continue;
      }
      serial = below_serial - room;
    }
    std::string cma;
    if (Status st = PackCatchUp(opts, g, *want, want_hex, &have, from_release, tree, job, serial, encrypt, dir, &cma);
        !st.ok()) {
      log::Error(st.message());
      sum.failed += g.servers.size();
      continue;
    }
    std::vector<std::string> servers;
    for (const auto& s : g.servers) {
      if (s == kShadowName) {
        if (Status st = ApplyToShadow(opts, cma); !st.ok()) log::Warn(st.message());
      } else {
        servers.push_back(s);
      }
    }
    if (servers.empty()) continue;
    if (opts.verbosity > 0)
      log::Info(job + ": " + (g.kind == push::CatchUp::kSync
                                   ? "synchronize from " + (from_release.empty() ? "an empty tree" : from_release) +
                                         (g.unknown_paths.empty()
                                              ? ""
                                              : " (" + std::to_string(g.unknown_paths.size()) +
                                                    " path(s) changed behind cm-apply's back)")
                                   : std::string("replicate (the tree it runs is not a checkpoint)")) +
                " -> " + Join(servers));
    PushOptions sub = opts;
    sub.assignments = {cma};
    sub.only = servers;
    sub.converge = false;
    sub.expect_manifest.clear();  // the catch-up's own BASE says (RunPush)
    sub.checkpoints = 0;
    sub.shadow.clear();
    sub.report_file.clear();
    sub.metrics_file.clear();
    sub.on_commit.clear();
    sub.on_fail.clear();
    sub.commit_file.clear();
    sub.commit = true;
    sub.require = "1";
    sub.json = false;
    sub.live_view = false;
    sub.verbosity = std::min(opts.verbosity, 1);
    sub.invocation.clear();
    sub.command_line = opts.command_line + "  " + kCatchUpMark + job + "]";
    auto out = RunPush(sub);
    sum.jobs.push_back(job);
    if (!out.ok()) {
      log::Error(job + ": " + out.status().message());
      sum.failed += servers.size();
      continue;
    }
    sum.caught_up += out->ok;
    sum.failed += out->failed;
  }
  return sum;
}

Result<ConvergeSummary> ConvergeToShadow(const PushOptions& opts, std::string* release) {
  auto sh = ReadShadow(opts.shadow);
  if (!sh) return Error(Code::kNotFound, (opts.shadow.empty() ? std::string("no --shadow") : opts.shadow + ": no current release") +
                                             ": the shadow copy is what servers converge to");
  *release = sh->release;
  PushOptions o = opts;
  if (o.checkpoints == 0) o.checkpoints = 10;
  CM_RETURN_IF_ERROR(KeepCheckpoint(o));
  ConvergeJob cj;
  cj.name = "converge";
  return ConvergeTo(opts, sh->release, cj);
}

int ConvergeOutcome(const std::string& what, const std::string& release, const ConvergeSummary& s) {
  const size_t total = s.ready + s.caught_up + s.failed + s.unknown;
  const size_t ok = s.ready + s.caught_up;
  std::printf("%s %s: %zu of %zu servers run it (%zu caught up, %zu failed, %zu did not answer)\n", what.c_str(),
              release.c_str(), ok, total, s.caught_up, s.failed, s.unknown);
  std::fflush(stdout);
  return ok == total ? kExitOk : ok > 0 ? kExitPartial : kExitFailure;
}

Status KeepCheckpoint(const PushOptions& opts) {
  if (opts.state_dir.empty() || opts.checkpoints == 0) return Status::Ok();
  auto sh = ReadShadow(opts.shadow);
  if (!sh) return Status::Ok();
  auto store = ckpt::Store::Open(CheckpointDir(opts.state_dir));
  if (!store.ok()) return store.status();
  ckpt::AddOptions ao;
  ao.cache_same_device = true;
  auto added = (*store)->Add(sh->release, sh->serial, sh->tree, ao);
  if (!added.ok()) return added.status();
  if (opts.verbosity > 1)
    log::Info("checkpoint " + sh->release + ": " + std::to_string(added->new_objects) + " new file(s), " +
              std::to_string(added->new_bytes) + " bytes");
  auto pruned = (*store)->Prune(opts.checkpoints, {sh->release});
  if (!pruned.ok()) return pruned.status();
  return Status::Ok();
}

}  // namespace cm::pushrun
