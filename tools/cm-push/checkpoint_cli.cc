#include "checkpoint_cli.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>

#include "apply/layout.h"
#include "apply/state.h"
#include "ckpt/store.h"
#include "pushrun/converge_run.h"
#include "util/config_dir.h"
#include "pushdb/render.h"
#include "util/exit_codes.h"
#include "util/json.h"
#include "util/log.h"
#include "util/strings.h"

namespace cm {
namespace {

int Fail(const Status& st) {
  log::Error(st.message());
  return ExitCodeFor(st);
}

std::string StoreDir(const std::string& state) { return state + "/checkpoints"; }

Status CheckState(const std::string& dir) {
  if (dir.empty()) return Error(Code::kUsage, "--state DIR is required");
  if (::access(dir.c_str(), F_OK) != 0) return Error(Code::kNotFound, dir + ": no such state directory");
  if (!std::filesystem::is_directory(dir)) return Error(Code::kUsage, dir + ": not a directory (--state DIR)");
  return Status::Ok();
}

std::string InfoJson(const ckpt::ReleaseInfo& i, const ckpt::VerifyResult* v) {
  JsonObject o;
  o.Str("release", i.release)
      .Uint("serial", i.serial)
      .Str("manifest", ToHex(i.manifest))
      .Uint("files", i.files)
      .Uint("bytes", i.bytes)
      .Int("created_unix", i.created_unix);
  if (v) {
    JsonArray bad;
    for (const auto& b : v->bad) bad.Str(b);
    o.Bool("ok", v->ok()).Raw("bad", bad.Build());
  }
  return o.Build();
}

int List(const CheckpointCli& c) {
  if (Status s = CheckState(c.state_dir); !s.ok()) return Fail(s);
  std::vector<ckpt::ReleaseInfo> all;
  std::vector<ckpt::VerifyResult> verified;
  uint64_t disk = 0;
  std::unique_ptr<ckpt::Store> store;
  // Listing never creates the store: no checkpoints yet is an empty list.
  if (std::filesystem::is_directory(StoreDir(c.state_dir))) {
    auto s = ckpt::Store::Open(StoreDir(c.state_dir));
    if (!s.ok()) return Fail(s.status());
    store = std::move(*s);
    auto l = store->List();
    if (!l.ok()) return Fail(l.status());
    all = std::move(*l);
    auto d = store->DiskBytes();
    if (!d.ok()) return Fail(d.status());
    disk = *d;
  }
  std::string damaged;
  std::map<Hash256, bool> checked;  // each shared content read once
  for (const auto& i : all) {
    if (!c.verify) break;
    auto v = store->Verify(i.release, &checked);
    if (!v.ok()) return Fail(v.status());
    if (!v->ok() && damaged.empty())
      damaged = "checkpoint " + i.release + " is damaged: " + std::to_string(v->bad.size()) + " objects (e.g. " +
                v->bad.front() + ")";
    verified.push_back(std::move(*v));
  }
  if (c.json) {
    JsonArray arr;
    for (size_t k = 0; k < all.size(); ++k) arr.Raw(InfoJson(all[k], c.verify ? &verified[k] : nullptr));
    std::string out = JsonObject()
                          .Int("v", 1)
                          .Str("store", StoreDir(c.state_dir))
                          .Uint("disk_bytes", disk)
                          .Raw("checkpoints", arr.Build())
                          .Build();
    std::printf("%s\n", out.c_str());
  } else {
    std::vector<std::string> header = {"RELEASE", "SERIAL", "MANIFEST", "FILES", "SIZE", "CREATED"};
    if (c.verify) header.push_back("VERIFY");
    std::vector<std::vector<std::string>> rows;
    for (size_t k = 0; k < all.size(); ++k) {
      const auto& i = all[k];
      rows.push_back({i.release, std::to_string(i.serial), delta::ShortHash(i.manifest), std::to_string(i.files),
                      HumanBytes(i.bytes), pushdb::FormatTimeHuman(i.created_unix * 1000)});
      if (c.verify) rows.back().push_back(verified[k].ok() ? "ok" : "DAMAGED");
    }
    if (!rows.empty()) std::fputs(pushdb::RenderTable(header, rows).c_str(), stdout);
    std::printf("%zu checkpoint%s, %s on disk in %s\n", all.size(), all.size() == 1 ? "" : "s",
                HumanBytes(disk).c_str(), StoreDir(c.state_dir).c_str());
  }
  if (!damaged.empty()) return Fail(Error(Code::kCorrupt, damaged));
  return kExitOk;
}

int Create(const CheckpointCli& c) {
  if (Status s = CheckState(c.state_dir); !s.ok()) return Fail(s);
  std::string tree = c.from, release = c.release;
  uint64_t serial = c.serial;
  delta::Manifest recorded;
  ckpt::AddOptions opts;
  if (!c.from.empty()) {
    if (release.empty()) return Fail(Error(Code::kUsage, "--from DIR needs --release NAME"));
  } else {
    // The shadow copy: its live release (or --release, one of its releases).
    const std::string root = c.shadow.empty() ? c.state_dir + "/shadow" : c.shadow;
    apply::Layout l(root);
    if (!std::filesystem::is_directory(l.releases))
      return Fail(
          Error(Code::kNotFound, root + ": no shadow copy here (give --shadow ROOT, or --from DIR --release NAME)"));
    if (release.empty()) {
      auto st = apply::LoadState(l.state);
      if (!st.ok()) return Fail(st.status());
      if (st->current.empty()) return Fail(Error(Code::kNotFound, root + ": the shadow copy has no current release"));
      release = st->current;
    }
    tree = l.Release(release);
    if (!std::filesystem::is_directory(tree))
      return Fail(Error(Code::kNotFound, root + ": the shadow copy has no release " + release));
    // cm-apply's recorded manifest of that release, when it keeps one, spares
    // hashing the tree; its releases share unchanged files by hard links, so
    // the previous checkpoint of the same file system serves too.
    if (auto m = delta::LoadManifest(root + "/.cm/manifests/" + release + ".mf"); m.ok()) {
      recorded = std::move(*m);
      opts.cache = &recorded;
    }
    opts.cache_same_device = true;
  }
  if (!ckpt::IsValidReleaseName(release))
    return Fail(Error(Code::kUsage,
                      "--release: '" + release + "' is not a release name ([A-Za-z0-9._-], not starting with '.')"));
  if (serial == 0) serial = apply::ReleaseSerial(release);
  auto store = ckpt::Store::Open(StoreDir(c.state_dir));
  if (!store.ok()) return Fail(store.status());
  auto r = (*store)->Add(release, serial, tree, opts);
  if (!r.ok()) return Fail(r.status());
  auto p = (*store)->Prune(c.keep, {release});
  if (!p.ok()) return Fail(p.status());
  auto disk = (*store)->DiskBytes();
  if (!disk.ok()) return Fail(disk.status());
  const auto& i = r->info;
  if (c.json) {
    JsonArray removed;
    for (const auto& x : p->removed) removed.Str(x);
    std::string out = JsonObject()
                          .Int("v", 1)
                          .Raw("checkpoint", InfoJson(i, nullptr))
                          .Bool("existed", r->existed)
                          .Uint("hashed_bytes", r->hashed_bytes)
                          .Uint("new_objects", r->new_objects)
                          .Uint("new_bytes", r->new_bytes)
                          .Raw("pruned", removed.Build())
                          .Uint("disk_bytes", *disk)
                          .Build();
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("checkpoint %s (serial %llu, manifest %s): %llu files, %s%s; %s new; store %s\n", i.release.c_str(),
                static_cast<unsigned long long>(i.serial), delta::ShortHash(i.manifest).c_str(),
                static_cast<unsigned long long>(i.files), HumanBytes(i.bytes).c_str(),
                r->existed ? " (already stored)" : "", HumanBytes(r->new_bytes).c_str(), HumanBytes(*disk).c_str());
    for (const auto& x : p->removed) std::printf("pruned %s\n", x.c_str());
  }
  return kExitOk;
}

int Prune(const CheckpointCli& c) {
  if (Status s = CheckState(c.state_dir); !s.ok()) return Fail(s);
  auto store = ckpt::Store::Open(StoreDir(c.state_dir));
  if (!store.ok()) return Fail(store.status());
  auto p = (*store)->Prune(c.keep, c.pin);
  if (!p.ok()) return Fail(p.status());
  auto disk = (*store)->DiskBytes();
  if (!disk.ok()) return Fail(disk.status());
  if (c.json) {
    JsonArray removed;
    for (const auto& x : p->removed) removed.Str(x);
    std::string out = JsonObject()
                          .Int("v", 1)
                          .Raw("pruned", removed.Build())
                          .Uint("objects_removed", p->gc.removed)
                          .Uint("bytes_freed", p->gc.bytes_freed)
                          .Uint("disk_bytes", *disk)
                          .Build();
    std::printf("%s\n", out.c_str());
  } else {
    for (const auto& x : p->removed) std::printf("pruned %s\n", x.c_str());
    std::printf("%zu checkpoint%s pruned, %llu objects (%s) freed; store %s\n", p->removed.size(),
                p->removed.size() == 1 ? "" : "s", static_cast<unsigned long long>(p->gc.removed),
                HumanBytes(p->gc.bytes_freed).c_str(), HumanBytes(*disk).c_str());
  }
  return kExitOk;
}

}  // namespace

CLI::App* AddCheckpointCommand(CLI::App& app, CheckpointCli* c) {
  c->cmd = app.add_subcommand("checkpoint", "The CCM's checkpoints: whole releases kept in STATE/checkpoints");
  c->cmd->require_subcommand(1, 1);
  c->list = c->cmd->add_subcommand("list", "List the checkpoints, newest first");
  c->list->add_option("--state", c->state_dir, "CCM state directory")->required();
  c->list->add_flag("--json", c->json, "One JSON object");
  c->list->add_flag("--verify", c->verify, "Re-hash every stored file (exit 4 when one is damaged)");
  c->create = c->cmd->add_subcommand("create", "Store a release (default: the shadow copy's current one)");
  c->create->add_option("--state", c->state_dir, "CCM state directory")->required();
  c->create->add_option("--from", c->from, "Store this directory instead of a shadow release (needs --release)");
  c->create->add_option("--release", c->release, "Release name (default: the shadow copy's current release)");
  c->create->add_option("--serial", c->serial, "Release serial (default: from the release name s<serial>-<job>)");
  c->create->add_option("--shadow", c->shadow, "The shadow copy's content root (default STATE/shadow)");
  c->create->add_option("--keep", c->keep, "Then keep only the newest N checkpoints (default 10)")
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  c->create->add_flag("--json", c->json, "One JSON object");
  c->prune = c->cmd->add_subcommand("prune", "Keep the newest checkpoints, remove the others and unused files");
  c->prune->add_option("--state", c->state_dir, "CCM state directory")->required();
  c->prune->add_option("--keep", c->keep, "How many to keep, newest by serial (default 10)")
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  c->prune->add_option("--pin", c->pin, "Keep these releases too: NAME[,NAME...]")
      ->delimiter(',')
      ->allow_extra_args(false);
  c->prune->add_flag("--json", c->json, "One JSON object");
  c->restore = c->cmd->add_subcommand(
      "restore", "Bring every server (and the shadow copy) to a checkpoint: each gets only the files it lacks");
  c->restore->add_option("release", c->release, "The checkpoint's release name (cm-push checkpoint list)")->required();
  c->restore->add_option("--to", c->push.sites_file, "Sites file")->required();
  c->restore->add_option("--state", c->state_dir, "CCM state directory")->required();
  c->restore->add_option("--shadow", c->push.shadow, "Content root of the CCM's shadow copy, restored too");
  c->restore->add_option("--sign-key", c->push.sign_key, "The CCM's key (default CONF/ccm.key)");
  c->restore->add_option("--group-key", c->push.group_key, "Group key (default CONF/group.key)");
  c->restore->add_option("--serial-file", c->push.serial_file, "Serial file (default STATE/serial)");
  c->restore->add_option("--only", c->push.only, "Only these servers or sites: NAME[,NAME...]")
      ->delimiter(',')
      ->allow_extra_args(false);
  c->restore->add_option("--timeout", c->push.timeout_s, "Give up on each catch-up job after this many seconds");
  return c->cmd;
}

namespace {
// restore: the checkpoint's tree to every server that does not run it.
int Restore(const CheckpointCli& c, const pushrun::PushOptions& defaults) {
  if (Status s = CheckState(c.state_dir); !s.ok()) return Fail(s);
  pushrun::PushOptions p = c.push;
  p.state_dir = c.state_dir;
  p.cm_pack = defaults.cm_pack;
  p.cm_apply = defaults.cm_apply;
  p.verbosity = defaults.verbosity;
  p.sign_key = DefaultFile(p.sign_key, "ccm.key");
  p.group_key = DefaultFile(p.group_key, "group.key");
  p.command_line = defaults.command_line;
  if (p.sign_key.empty()) return Fail(Error(Code::kUsage, "no signing key (--sign-key)"));
  if (p.group_key.empty()) return Fail(Error(Code::kUsage, "no group key (--group-key)"));
  auto store = ckpt::Store::Open(StoreDir(c.state_dir));
  if (!store.ok()) return Fail(store.status());
  if (auto info = (*store)->Info(c.release); !info.ok())
    return Fail(Error(Code::kNotFound, "no checkpoint " + c.release + " (cm-push checkpoint list --state " +
                                           c.state_dir + ")"));
  auto sum = pushrun::ConvergeTo(p, c.release);
  if (!sum.ok()) return Fail(sum.status());
  if (Status st = pushrun::KeepCheckpoint(p); !st.ok()) log::Warn("checkpoint not kept: " + st.message());
  return pushrun::ConvergeOutcome("restore", c.release, *sum);
}
}  // namespace

int RunCheckpoint(const CheckpointCli& c, const pushrun::PushOptions& defaults) {
  if (c.list->parsed()) return List(c);
  if (c.create->parsed()) return Create(c);
  if (c.restore->parsed()) return Restore(c, defaults);
  return Prune(c);
}

}  // namespace cm
