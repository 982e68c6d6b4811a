#include "ckpt/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <set>

#include "util/crash_point.h"

namespace cm::ckpt {

namespace {

Status MkdirP(const std::string& p) {
  std::error_code ec;
  std::filesystem::create_directories(p, ec);
  if (ec) return Error(ec == std::errc::no_space_on_device ? Code::kNoSpace : Code::kIo, p + ": " + ec.message());
  return Status::Ok();
}

// Names in a directory (no "." or "..").
Result<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return ErrnoError(dir, errno);
  std::vector<std::string> out;
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool EndsWith(const std::string& s, std::string_view suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

Store::Store(std::string dir) : dir_(std::move(dir)), objects_(dir_ + "/objects", dir_ + "/tmp") {}

Result<std::unique_ptr<Store>> Store::Open(const std::string& dir) {
  if (dir.empty()) return Error(Code::kUsage, "no checkpoint store directory");
  for (const char* sub : {"/objects", "/releases", "/tmp"}) CM_RETURN_IF_ERROR(MkdirP(dir + sub));
  std::unique_ptr<Store> s(new Store(dir));
  auto lock = s->Lock(LOCK_EX | LOCK_NB);
  if (lock.ok()) {
    CM_RETURN_IF_ERROR(s->Cleanup());
  } else if (lock.status().code() != Code::kBusy) {
    return lock.status();
  }  // else a writer is at work: its files are not strays
  return s;
}

Result<UniqueFd> Store::Lock(int op) const {
  const std::string p = dir_ + "/lock";
  UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return ErrnoError(p, errno);
  while (::flock(fd.get(), op) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return Error(Code::kBusy, p + ": locked by another process");
    return ErrnoError(p, errno);
  }
  return fd;
}

Status Store::Cleanup() {
  CM_ASSIGN_OR_RETURN(auto tmp, ListDir(dir_ + "/tmp"));
  for (const auto& n : tmp) {
    std::error_code ec;
    std::filesystem::remove_all(dir_ + "/tmp/" + n, ec);
  }
  CM_ASSIGN_OR_RETURN(auto names, ListDir(dir_ + "/releases"));
  std::set<std::string> all(names.begin(), names.end());
  for (const auto& n : names) {
    const std::string p = dir_ + "/releases/" + n;
    bool stray = n[0] == '.';  // an AtomicFile's temporary name
    if (EndsWith(n, ".mf")) stray = stray || !all.count(n.substr(0, n.size() - 3) + ".info");
    if (EndsWith(n, ".info")) stray = stray || !all.count(n.substr(0, n.size() - 5) + ".mf");
    if (stray && ::unlink(p.c_str()) != 0 && errno != ENOENT) return ErrnoError(p, errno);
  }
  return Status::Ok();
}

Result<std::vector<ReleaseInfo>> Store::List() const {
  CM_ASSIGN_OR_RETURN(auto names, ListDir(dir_ + "/releases"));
  std::vector<ReleaseInfo> out;
  for (const auto& n : names) {
    if (n[0] == '.' || !EndsWith(n, ".info")) continue;
    auto text = ReadFileToString(dir_ + "/releases/" + n);
    if (!text.ok()) {
      if (text.status().code() == Code::kNotFound) continue;  // pruned meanwhile
      return text.status();
    }
    auto info = DecodeInfo(*text);
    if (!info.ok()) return Error(Code::kCorrupt, dir_ + "/releases/" + n + ": " + info.status().message());
    out.push_back(std::move(*info));
  }
  std::sort(out.begin(), out.end(), NewerThan);
  return out;
}

Result<ReleaseInfo> Store::Info(const std::string& release) const {
  if (!IsValidReleaseName(release)) return Error(Code::kUsage, "'" + release + "' is not a release name");
  auto text = ReadFileToString(InfoPath(release));
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound)
      return Error(Code::kNotFound, "no checkpoint of release " + release + " in " + dir_);
    return text.status();
  }
  auto info = DecodeInfo(*text);
  if (!info.ok()) return Error(Code::kCorrupt, InfoPath(release) + ": " + info.status().message());
  return info;
}

Result<delta::Manifest> Store::LoadManifest(const std::string& release) const {
  CM_ASSIGN_OR_RETURN(ReleaseInfo info, Info(release));
  CM_ASSIGN_OR_RETURN(delta::Manifest m, delta::LoadManifest(MfPath(release)));
  if (delta::ManifestHash(m) != info.manifest)
    return Error(Code::kCorrupt,
                 MfPath(release) + ": manifest does not hash to the recorded " + delta::ShortHash(info.manifest));
  return m;
}

std::optional<std::string> Store::FindByManifest(const Hash256& h) const {
  auto all = List();
  if (!all.ok()) return std::nullopt;
  for (const auto& i : *all)
    if (i.manifest == h) return i.release;
  return std::nullopt;
}

const delta::Manifest* Store::PickCache(const std::vector<ReleaseInfo>& all, const std::string& real, uint64_t dev,
                                        bool same_device, delta::Manifest* holder) const {
  // Same directory first; then, if allowed, any tree of the same file system.
  for (int pass = 0; pass < (same_device ? 2 : 1); ++pass) {
    for (const auto& i : all) {
      if (i.source_dev != dev || (pass == 0 && i.source != real)) continue;
      auto m = LoadManifest(i.release);
      if (!m.ok()) continue;
      *holder = std::move(*m);
      return holder;
    }
  }
  return nullptr;
}

Result<AddResult> Store::Add(const std::string& release, uint64_t serial, const std::string& tree_dir,
                             const AddOptions& opts) {
  if (!IsValidReleaseName(release))
    return Error(Code::kUsage, "'" + release + "' is not a release name ([A-Za-z0-9._-], not starting with '.')");
  // Resolve once: a symlink switched meanwhile (a content root's current)
  // must not mix two trees.
  char real_buf[PATH_MAX];
  if (!::realpath(tree_dir.c_str(), real_buf)) return ErrnoError(tree_dir, errno);
  const std::string real = real_buf;
  struct stat root_st;
  if (::stat(real.c_str(), &root_st) != 0) return ErrnoError(tree_dir, errno);
  if (!S_ISDIR(root_st.st_mode)) return Error(Code::kUsage, tree_dir + ": not a directory");

  CM_ASSIGN_OR_RETURN(UniqueFd lock, Lock(LOCK_EX));
  CM_RETURN_IF_ERROR(Cleanup());
  CM_ASSIGN_OR_RETURN(std::vector<ReleaseInfo> all, List());

  AddResult res;
  delta::Manifest cache_holder;
  delta::ManifestOptions mo;
  mo.cache = opts.cache
                 ? opts.cache
                 : PickCache(all, real, static_cast<uint64_t>(root_st.st_dev), opts.cache_same_device, &cache_holder);
  CM_ASSIGN_OR_RETURN(delta::Manifest m, delta::BuildManifest(real, mo, &res.hashed_bytes));
  const Hash256 mh = delta::ManifestHash(m);

  for (const auto& i : all) {
    if (i.release != release) continue;
    if (i.manifest != mh)
      return Error(Code::kOrder, "release " + release + " is stored with manifest " + delta::ShortHash(i.manifest) +
                                     "; " + tree_dir + " is " + delta::ShortHash(mh));
    res.info = i;
    res.existed = true;
    return res;
  }

  for (const auto& e : m.entries) {
    if (e.kind != delta::Kind::kFile || objects_.Has(e.hash)) continue;
    CM_RETURN_IF_ERROR(objects_.Put(real + "/" + e.path, e.hash, e.size));
    ++res.new_objects;
    res.new_bytes += e.size;
    CrashPoint("ckpt-object");
  }
  // The objects are durable before anything names them.
  {
    UniqueFd d(::open((dir_ + "/objects").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d || ::syncfs(d.get()) != 0) return ErrnoError(dir_ + "/objects: sync", errno);
  }
  CrashPoint("ckpt-objects-synced");
  CM_RETURN_IF_ERROR(delta::SaveManifest(MfPath(release), m));
  CrashPoint("ckpt-manifest-written");

  ReleaseInfo& info = res.info;
  info.release = release;
  info.serial = serial;
  info.manifest = mh;
  for (const auto& e : m.entries)
    if (e.kind == delta::Kind::kFile) ++info.files;
  info.bytes = m.FileBytes();
  info.created_unix = static_cast<int64_t>(::time(nullptr));
  info.source_dev = static_cast<uint64_t>(root_st.st_dev);
  info.source = real;
  CM_RETURN_IF_ERROR(WriteFileAtomic(InfoPath(release), EncodeInfo(info), 0644));
  return res;
}

Result<PruneResult> Store::Prune(size_t keep, const std::vector<std::string>& pinned) {
  CM_ASSIGN_OR_RETURN(UniqueFd lock, Lock(LOCK_EX));
  CM_RETURN_IF_ERROR(Cleanup());
  CM_ASSIGN_OR_RETURN(std::vector<ReleaseInfo> all, List());
  PruneResult res;
  std::set<Hash256> referenced;
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string& r = all[i].release;
    const bool kept = i < keep || std::find(pinned.begin(), pinned.end(), r) != pinned.end();
    if (kept) {
      // A manifest that cannot be read keeps every object (nothing is lost
      // by a GC that cannot see what a release needs).
      auto m = LoadManifest(r);
      if (!m.ok()) return Error(m.status().code(), "prune stopped before removing anything: " + m.status().message());
      for (const auto& e : m->entries)
        if (e.kind == delta::Kind::kFile) referenced.insert(e.hash);
      continue;
    }
    res.removed.push_back(r);
  }
  for (const auto& r : res.removed) {
    // The .info first: the release is gone at once, then its manifest.
    if (::unlink(InfoPath(r).c_str()) != 0 && errno != ENOENT) return ErrnoError(InfoPath(r), errno);
    if (::unlink(MfPath(r).c_str()) != 0 && errno != ENOENT) return ErrnoError(MfPath(r), errno);
  }
  CM_RETURN_IF_ERROR(FsyncDir(dir_ + "/releases"));
  CM_ASSIGN_OR_RETURN(res.gc, objects_.Collect(referenced));
  return res;
}

Result<uint64_t> Store::DiskBytes() const {
  CM_ASSIGN_OR_RETURN(uint64_t n, objects_.Bytes());
  CM_ASSIGN_OR_RETURN(auto names, ListDir(dir_ + "/releases"));
  for (const auto& r : names) {
    struct stat st;
    if (::lstat((dir_ + "/releases/" + r).c_str(), &st) == 0 && S_ISREG(st.st_mode))
      n += static_cast<uint64_t>(st.st_size);
  }
  return n;
}

}  // namespace cm::ckpt
