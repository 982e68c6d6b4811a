#include "apply/release_manifest.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "apply/dir_meta.h"
#include "util/file_util.h"
#include "util/hash.h"

namespace cm::apply {
namespace {

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

std::string Named(const std::string& release) { return release.empty() ? std::string("(none)") : release; }

}  // namespace

std::string ManifestPath(const Layout& l, const std::string& release) { return l.manifests + "/" + release + ".mf"; }

Result<delta::Manifest> RecordedManifest(const Layout& l, const std::string& release, bool compute_if_missing) {
  if (release.empty()) return delta::Manifest{};
  const std::string path = ManifestPath(l, release);
  auto m = delta::LoadManifest(path);
  if (m.ok() || m.status().code() != Code::kNotFound) return m;
  if (!compute_if_missing) return m.status();
  CM_ASSIGN_OR_RETURN(delta::Manifest built, delta::BuildManifest(l.Release(release), {}));
  if (::mkdir(l.manifests.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError(l.manifests, errno);
  CM_RETURN_IF_ERROR(delta::SaveManifest(path, built));
  return built;
}

std::string RecordedManifestHex(const Layout& l, const std::string& release, bool compute_if_missing) {
  auto m = RecordedManifest(l, release, compute_if_missing);
  return m.ok() ? ToHex(delta::ManifestHash(*m)) : std::string();
}

Result<LiveTree> ExamineLive(const Layout& l, const std::string& release, bool full) {
  LiveTree t;
  t.release = release;
  CM_ASSIGN_OR_RETURN(t.recorded, RecordedManifest(l, release, true));
  t.recorded_hash = delta::ManifestHash(t.recorded);
  if (release.empty()) {
    t.now_hash = t.recorded_hash;
    return t;
  }
  delta::ManifestOptions mo;
  mo.cache = full ? nullptr : &t.recorded;
  CM_ASSIGN_OR_RETURN(t.now, delta::BuildManifest(l.Release(release), mo));
  t.now_hash = delta::ManifestHash(t.now);
  if (t.now_hash != t.recorded_hash) t.diff = delta::DiffManifests(t.recorded, t.now);
  return t;
}

Status CheckBase(const Layout& l, const std::string& release, const delta::TableBase& base) {
  if (delta::IsZeroHash(base.manifest)) return Status::Ok();
  auto live = ExamineLive(l, release, false);
  // A special file put into the live tree: it has no manifest, so it is not the base.
  if (!live.ok() && live.status().code() == Code::kFailure)
    return Error(Code::kBaseMismatch, "live tree is " + Named(release) + ": " + live.status().message() +
                                          "; the assignment applies to " + Named(base.release));
  if (!live.ok()) return live.status();
  const LiveTree& t = *live;
  if (t.now_hash == base.manifest) return Status::Ok();
  std::string msg = "live tree is " + Named(release) + " (manifest " + delta::ShortHash(t.recorded_hash) + ")";
  if (!t.ok()) {
    const auto& d = t.diff;
    const std::string& eg = !d.changed.empty() ? d.changed[0] : !d.missing.empty() ? d.missing[0] : d.extra[0];
    msg += ", " + std::to_string(d.size()) + " paths changed behind cm-apply's back, e.g. " + eg;
  }
  msg += "; the assignment applies to " + Named(base.release) + " (manifest " + delta::ShortHash(base.manifest) + ")";
  return Error(Code::kBaseMismatch, msg);
}

Result<delta::Manifest> StagedManifest(const Layout& l, const std::string& stage_name, const delta::Manifest* cache) {
  delta::ManifestOptions mo;
  mo.cache = cache;
  CM_ASSIGN_OR_RETURN(delta::Manifest m, delta::BuildManifest(l.StageDir(stage_name), mo));
  // Directories whose true mode waits for the commit (dir_meta.h).
  CM_ASSIGN_OR_RETURN(DirMetaMap dirs, ReplayDirMeta(l.DirMetaPath(stage_name)));
  for (auto& e : m.entries) {
    if (e.kind != delta::Kind::kDir) continue;
    auto it = dirs.find(e.path);
    if (it != dirs.end()) e.mode = it->second.mode & 07777;
  }
  return m;
}

void CarryTouchCopies(const std::vector<Stager::TouchCopy>& copies, delta::Manifest* cache) {
  for (const Stager::TouchCopy& c : copies) {
    auto it = std::lower_bound(cache->entries.begin(), cache->entries.end(), c.path,
                               [](const delta::ManifestEntry& e, const std::string& p) {
                                 return delta::ComparePaths(e.path, p) < 0;
                               });
    if (it == cache->entries.end() || it->path != c.path || it->kind != delta::Kind::kFile) continue;
    if (it->ino == 0 || it->ino != c.src_ino || it->size != c.size || it->mtime_ns != c.src_mtime_ns) continue;
    it->ino = c.ino;
    it->mtime_ns = c.mtime_ns;
  }
}

void PruneManifests(const Layout& l, const std::string& keep_also) {
  DIR* d = ::opendir(l.manifests.c_str());
  if (!d) return;
  std::vector<std::string> gone;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() <= 3 || n.compare(n.size() - 3, 3, ".mf") != 0) continue;
    const std::string release = n.substr(0, n.size() - 3);
    if (release != keep_also && !Exists(l.Release(release))) gone.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : gone) ::unlink((l.manifests + "/" + n).c_str());
}

std::string StagedRelease(const State& s) {
  if (!s.HasStage() || !s.staged_complete) return "";
  return ReleaseId(s.staged_serial, s.staged_job);
}

}  // namespace cm::apply
