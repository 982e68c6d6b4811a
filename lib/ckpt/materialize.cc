// Store::Materialize and Store::Verify: reading releases back out.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>
#include <unordered_set>

#include "ckpt/store.h"

namespace cm::ckpt {

namespace {


// Sets the mtime (atime too: the same) of `path` relative to dir_fd; 0 = leave.
Status SetMtimeAt(int dir_fd, const std::string& path, int64_t mtime_ns, int flags) {
  if (mtime_ns == 0) return Status::Ok();
  timespec ts[2] = {NsToTimespec(mtime_ns), NsToTimespec(mtime_ns)};
  if (::utimensat(dir_fd, path.c_str(), ts, flags) != 0) return ErrnoError(path, errno);
  return Status::Ok();
}

// Removes a half-built tree, making its directories writable first.
void RemoveBuilt(const std::string& root) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
  }
  ::chmod(root.c_str(), 0700);
  std::filesystem::remove_all(root, ec);
}

// Builds the manifest's tree in the open directory tmp_fd.
Status Build(const delta::Manifest& m, const Objects& objects, int tmp_fd) {
  std::unordered_set<std::string> dirs;
  for (const auto& e : m.entries) {
    // A manifest from disk is checked like any input: no escapes, and a
    // parent must be one of its directories (never a symlink it made).
    if (!delta::IsSafeRelativePath(e.path)) return Error(Code::kUnsafePath, e.path + ": unsafe path in the manifest");
    size_t slash = e.path.rfind('/');
    if (slash != std::string::npos && !dirs.count(e.path.substr(0, slash)))
      return Error(Code::kCorrupt, e.path + ": parent is not a directory of the manifest");
    switch (e.kind) {
      case delta::Kind::kDir:
        if (::mkdirat(tmp_fd, e.path.c_str(), 0700) != 0) return ErrnoError(e.path, errno);
        dirs.insert(e.path);
        break;
      case delta::Kind::kSymlink:
        if (::symlinkat(e.link_target.c_str(), tmp_fd, e.path.c_str()) != 0) return ErrnoError(e.path, errno);
        CM_RETURN_IF_ERROR(SetMtimeAt(tmp_fd, e.path, e.mtime_ns, AT_SYMLINK_NOFOLLOW));
        break;
      case delta::Kind::kFile: {
        UniqueFd out(::openat(tmp_fd, e.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (!out) return ErrnoError(e.path, errno);
        Status s = objects.CopyTo(e.hash, out.get());
        if (!s.ok()) return Status(s.code(), e.path + ": " + s.message());
        if (::fchmod(out.get(), e.mode & 07777) != 0) return ErrnoError(e.path, errno);
        if (e.mtime_ns != 0) {
          timespec ts[2] = {NsToTimespec(e.mtime_ns), NsToTimespec(e.mtime_ns)};
          if (::futimens(out.get(), ts) != 0) return ErrnoError(e.path, errno);
        }
        break;
      }
    }
  }
  // Directory modes and mtimes last, deepest first: a read-only directory
  // never blocks its children, and filling a directory moved its mtime.
  for (auto it = m.entries.rbegin(); it != m.entries.rend(); ++it) {
    if (it->kind != delta::Kind::kDir) continue;
    if (::fchmodat(tmp_fd, it->path.c_str(), it->mode & 07777, 0) != 0) return ErrnoError(it->path, errno);
    CM_RETURN_IF_ERROR(SetMtimeAt(tmp_fd, it->path, it->mtime_ns, AT_SYMLINK_NOFOLLOW));
  }
  return Status::Ok();
}

}  // namespace

Status Store::Materialize(const std::string& release, const std::string& dir) const {
  // Shared from before the manifest is read: no prune removes the release's
  // objects until the tree is built.
  CM_ASSIGN_OR_RETURN(UniqueFd lock, Lock(LOCK_SH));
  CM_ASSIGN_OR_RETURN(delta::Manifest m, LoadManifest(release));
  struct stat st;
  if (::lstat(dir.c_str(), &st) == 0) {
    std::error_code ec;
    if (!S_ISDIR(st.st_mode) || !std::filesystem::is_empty(dir, ec) || ec)
      return Error(Code::kUsage, dir + ": exists and is not an empty directory");
  } else if (errno != ENOENT) {
    return ErrnoError(dir, errno);
  }
  std::string base = dir;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  const std::string tmp = DirName(base) + "/." + BaseName(base) + ".ckpt-" + std::to_string(::getpid());
  RemoveBuilt(tmp);  // left by a killed run of this pid number
  if (::mkdir(tmp.c_str(), 0700) != 0) return ErrnoError(tmp, errno);
  Status s = [&]() -> Status {
    UniqueFd fd(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) return ErrnoError(tmp, errno);
    CM_RETURN_IF_ERROR(Build(m, objects_, fd.get()));
    if (::fchmod(fd.get(), 0755) != 0) return ErrnoError(tmp, errno);
    if (::syncfs(fd.get()) != 0) return ErrnoError(tmp, errno);
    // Onto a missing name or an empty directory: the tree appears whole.
    if (::rename(tmp.c_str(), base.c_str()) != 0) return ErrnoError(dir, errno);
    return Status::Ok();
  }();
  if (!s.ok()) RemoveBuilt(tmp);
  return s;
}

Result<VerifyResult> Store::Verify(const std::string& release, std::map<Hash256, bool>* checked) const {
  CM_ASSIGN_OR_RETURN(UniqueFd lock, Lock(LOCK_SH));
  CM_ASSIGN_OR_RETURN(delta::Manifest m, LoadManifest(release));
  VerifyResult v;
  std::map<Hash256, bool> local;
  if (!checked) checked = &local;
  std::set<Hash256> seen;
  for (const auto& e : m.entries) {
    if (e.kind != delta::Kind::kFile || !seen.insert(e.hash).second) continue;
    ++v.objects;
    auto known = checked->find(e.hash);
    if (known == checked->end()) {
      auto h = objects_.Rehash(e.hash);
      if (!h.ok() && h.status().code() != Code::kNotFound) return h.status();
      known = checked->emplace(e.hash, h.ok() && *h == e.hash).first;
    }
    if (!known->second) v.bad.push_back(e.path + (objects_.Has(e.hash) ? ": object damaged" : ": object missing"));
  }
  return v;
}

}  // namespace cm::ckpt
