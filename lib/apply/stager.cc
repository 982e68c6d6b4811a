#include "apply/stager.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "apply/fs_ops.h"
#include "apply/safe_path.h"
#include "delta/instructions.h"
#include "util/crash_point.h"
#include "util/hash.h"

namespace cm::apply {
namespace {

constexpr size_t kIoChunk = 256 * 1024;
// Bases at least this big are hashed in a second thread while patching.
constexpr uint64_t kParallelHashMin = 4 << 20;

// Parent of a command's path; a missing parent means the tree is not the one
// the assignment was made against.
Result<ParentRef> Parent(int tree_fd, const std::string& path) {
  auto p = OpenParentBeneath(tree_fd, path);
  if (!p.ok() && p.status().code() == Code::kNotFound)
    return Error(Code::kBaseMismatch, path + ": parent directory missing (" + p.status().message() + ")");
  return p;
}

Status Mismatch(const std::string& path, const std::string& why) {
  return Error(Code::kBaseMismatch, path + ": " + why);
}

// Maps errno of a rename/mkdir that collided with the tree's shape.
Status ShapeError(const std::string& path, int err) {
  if (err == EISDIR || err == ENOTDIR || err == ENOTEMPTY || err == EEXIST || err == EINVAL)
    return Mismatch(path, std::string("cannot replace: ") + std::strerror(err));
  return ErrnoError(path, err);
}

// An existing regular file, opened for reading without following a link and
// without opening a device or fifo (it is lstat'ed first).
Result<UniqueFd> OpenRegular(int dir_fd, const std::string& leaf, const std::string& path, struct stat* st) {
  auto s = LstatAt(dir_fd, leaf);
  if (!s.ok()) {
    if (s.status().code() == Code::kNotFound) return Mismatch(path, "missing");
    return Status(s.status().code(), path + ": " + s.status().message());
  }
  if (S_ISLNK(s->st_mode)) return Error(Code::kUnsafePath, path + ": is a symlink, not a regular file");
  if (S_ISDIR(s->st_mode)) return Mismatch(path, "is a directory, not a regular file");
  if (!S_ISREG(s->st_mode)) return Error(Code::kUnsafePath, path + ": special file (device, fifo or socket)");
  UniqueFd fd(::openat(dir_fd, leaf.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return ErrnoError(path, errno);
  if (::fstat(fd.get(), st) != 0) return ErrnoError(path, errno);
  if (!S_ISREG(st->st_mode)) return Error(Code::kUnsafePath, path + ": not a regular file");
  return fd;
}

// A new file under a temporary name in dir_fd, removed unless installed.
struct NewFile {
  explicit NewFile(int dir_fd) : dir(dir_fd), entry(dir_fd, TempLeaf()) {}
  Status Open(const std::string& path) {
    fd.reset(::openat(entry_dir(), entry.name().c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) {
      int e = errno;
      entry.Release();
      return ErrnoError(path, e);
    }
    return Status::Ok();
  }
  // Renames the new file over dir_fd/leaf (atomic replace of a file or symlink).
  Status Install(const std::string& leaf, const std::string& path) {
    fd.reset();
    if (::renameat(entry_dir(), entry.name().c_str(), entry_dir(), leaf.c_str()) != 0) return ShapeError(path, errno);
    entry.Release();
    return Status::Ok();
  }
  int entry_dir() const { return dir; }
  int dir;
  TempEntry entry;
  UniqueFd fd;
};

}  // namespace

Status Stager::Apply(const pack::Command& c, ByteSource* data) {
  CM_RETURN_IF_ERROR(ValidateRelPath(c.path));
  if (c.op == pack::Opcode::kRename || c.op == pack::Opcode::kCopy) CM_RETURN_IF_ERROR(ValidateRelPath(c.path2));
  Status st;
  switch (c.op) {
    case pack::Opcode::kMkdir: st = Mkdir(c); break;
    case pack::Opcode::kCreate: st = Create(c, data); break;
    case pack::Opcode::kPatch: st = Patch(c, data); break;
    case pack::Opcode::kRemove: st = Remove(c); break;
    case pack::Opcode::kRename: st = Rename(c); break;
    case pack::Opcode::kCopy: st = Copy(c); break;
    case pack::Opcode::kSetMeta: st = SetMeta(c); break;
    case pack::Opcode::kSymlink: st = Symlink(c); break;
    default: return Error(Code::kCorrupt, c.path + ": unknown command");
  }
  if (st.ok()) CrashPoint("stage.command");
  return st;
}

Status Stager::Mkdir(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(ParentRef p, Parent(tree_fd_, c.path));
  if (::mkdirat(p.dir.get(), p.leaf.c_str(), 0700) != 0) {
    if (errno != EEXIST) return ErrnoError(c.path, errno);
    CM_ASSIGN_OR_RETURN(struct stat st, LstatAt(p.dir.get(), p.leaf));
    if (!S_ISDIR(st.st_mode)) return Mismatch(c.path, "exists and is not a directory");
  }
  if (::fchmodat(p.dir.get(), p.leaf.c_str(), StagingDirMode(c.meta.mode), 0) != 0) return ErrnoError(c.path, errno);
  CM_RETURN_IF_ERROR(log_->Set(c.path, c.meta));
  ++stats_.dirs;
  return Status::Ok();
}

Status Stager::Create(const pack::Command& c, ByteSource* data) {
  CM_ASSIGN_OR_RETURN(ParentRef p, Parent(tree_fd_, c.path));
  NewFile f(p.dir.get());
  CM_RETURN_IF_ERROR(f.Open(c.path));
  Hasher h;
  uint64_t total = 0;
  if (data) {
    std::vector<char> buf(kIoChunk);
    for (;;) {
      CM_ASSIGN_OR_RETURN(size_t n, data->Read(buf.data(), buf.size()));
      if (n == 0) break;
      total += n;
      if (total > c.size) return Error(Code::kCorrupt, c.path + ": data longer than the file size");
      h.Update(buf.data(), n);
      Status st = WriteFull(f.fd.get(), buf.data(), n);
      if (!st.ok()) return Status(st.code(), c.path + ": " + st.message());
    }
  }
  if (total != c.size) return Error(Code::kCorrupt, c.path + ": data shorter than the file size");
  if (h.Finish() != c.hash) return Error(Code::kCorrupt, c.path + ": content hash mismatch");
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), c.meta, c.path));
  RememberHash(f.fd.get(), c.hash);
  CM_RETURN_IF_ERROR(f.Install(p.leaf, c.path));
  ++stats_.created;
  stats_.bytes_written += total;
  return Status::Ok();
}

Status Stager::Patch(const pack::Command& c, ByteSource* data) {
  CM_ASSIGN_OR_RETURN(ParentRef p, Parent(tree_fd_, c.path));
  struct stat st;
  CM_ASSIGN_OR_RETURN(UniqueFd base, OpenRegular(p.dir.get(), p.leaf, c.path, &st));
  if (static_cast<uint64_t>(st.st_size) != c.base_size)
    return Mismatch(c.path, "base size " + std::to_string(st.st_size) + ", expected " + std::to_string(c.base_size));
  if (!data) return Error(Code::kCorrupt, c.path + ": patch without instructions");

  // The base is hashed while the patch is built into a new temporary file:
  // on two cores that halves the time for a large file. Nothing is installed
  // (and live is never touched) unless the base hash matches.
  // A base cm-apply wrote itself carries its hash (RememberHash).
  Result<Hash256> base_hash = Hash256{};
  Hash256 memo;
  const bool remembered = RecallHash(base.get(), st, &memo);
  std::thread base_hasher;
  const bool parallel = !remembered && c.base_size >= kParallelHashMin;
  if (remembered)
    base_hash = memo;
  else if (parallel)
    base_hasher = std::thread([&] { base_hash = HashFile(base.get()); });
  else
    base_hash = HashFile(base.get());
  auto check_base = [&]() -> Status {
    if (base_hasher.joinable()) base_hasher.join();
    if (!base_hash.ok()) return Status(base_hash.status().code(), c.path + ": " + base_hash.status().message());
    if (*base_hash != c.base_hash) return Mismatch(c.path, "base content differs from the expected version");
    return Status::Ok();
  };
  if (!parallel) CM_RETURN_IF_ERROR(check_base());

  NewFile f(p.dir.get());
  Status s = f.Open(c.path);
  if (!s.ok()) {
    (void)check_base();
    return s;
  }
  delta::PatchApplier applier(base.get(), c.base_size, f.fd.get(), c.size);
  Hasher out_hasher;
  applier.set_output_hasher(&out_hasher);
  std::vector<char> buf(kIoChunk);
  for (;;) {
    auto n = data->Read(buf.data(), buf.size());
    if (!n.ok()) {
      s = n.status();
      break;
    }
    if (*n == 0) {
      s = applier.Finish();
      break;
    }
    s = applier.Feed(buf.data(), *n);
    if (!s.ok()) break;
  }
  // A wrong base explains a failed patch better than the patch's own error.
  CM_RETURN_IF_ERROR(check_base());
  if (!s.ok()) return Status(s.code(), c.path + ": " + s.message());
  if (out_hasher.Finish() != c.hash) return Error(Code::kCorrupt, c.path + ": patched content hash mismatch");
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), c.meta, c.path));
  RememberHash(f.fd.get(), c.hash);
  CM_RETURN_IF_ERROR(f.Install(p.leaf, c.path));
  ++stats_.patched;
  stats_.bytes_written += applier.written();
  return Status::Ok();
}

Status Stager::Remove(const pack::Command& c) {
  auto p = OpenParentBeneath(tree_fd_, c.path);
  if (!p.ok()) {
    if (p.status().code() == Code::kNotFound) return Status::Ok();  // already gone
    return p.status();
  }
  auto st = LstatAt(p->dir.get(), p->leaf);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Status::Ok() : st.status();
  if (S_ISDIR(st->st_mode)) {
    CM_RETURN_IF_ERROR(log_->Removed(c.path));
    Status s = RemoveTreeAt(p->dir.get(), p->leaf);
    if (!s.ok()) return Status(s.code(), c.path + ": " + s.message());
  } else if (::unlinkat(p->dir.get(), p->leaf.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoError(c.path, errno);
  }
  ++stats_.removed;
  return Status::Ok();
}

Status Stager::Rename(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(ParentRef from, Parent(tree_fd_, c.path));
  CM_ASSIGN_OR_RETURN(ParentRef to, Parent(tree_fd_, c.path2));
  auto st = LstatAt(from.dir.get(), from.leaf);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Mismatch(c.path, "rename source missing") : st.status();
  if (S_ISDIR(st->st_mode)) CM_RETURN_IF_ERROR(log_->Renamed(c.path, c.path2));
  if (::renameat(from.dir.get(), from.leaf.c_str(), to.dir.get(), to.leaf.c_str()) != 0)
    return ShapeError(c.path2, errno);
  ++stats_.renamed;
  return Status::Ok();
}

Status Stager::Copy(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(ParentRef from, Parent(tree_fd_, c.path));
  CM_ASSIGN_OR_RETURN(ParentRef to, Parent(tree_fd_, c.path2));
  struct stat st;
  CM_ASSIGN_OR_RETURN(UniqueFd src, OpenRegular(from.dir.get(), from.leaf, c.path, &st));
  NewFile f(to.dir.get());
  CM_RETURN_IF_ERROR(f.Open(c.path2));
  Status s = CopyFileData(src.get(), f.fd.get());
  if (!s.ok()) return Status(s.code(), c.path2 + ": " + s.message());
  // A copy keeps the source's metadata (like cp -p).
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), MetaFromStat(st), c.path2));
  CM_RETURN_IF_ERROR(f.Install(to.leaf, c.path2));
  ++stats_.copied;
  stats_.bytes_written += static_cast<uint64_t>(st.st_size);
  return Status::Ok();
}

Status Stager::SetMeta(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(ParentRef p, Parent(tree_fd_, c.path));
  auto st = LstatAt(p.dir.get(), p.leaf);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Mismatch(c.path, "missing") : st.status();
  ++stats_.meta;
  if (S_ISDIR(st->st_mode)) return log_->Set(c.path, c.meta);
  if (S_ISLNK(st->st_mode)) return ApplyMetaAt(p.dir.get(), p.leaf, c.meta, /*is_symlink=*/true, c.path);
  if (!S_ISREG(st->st_mode)) return Error(Code::kUnsafePath, c.path + ": special file");
  // A file with one link was written by this stage: nobody else sees it.
  if (st->st_nlink == 1) return ApplyMetaAt(p.dir.get(), p.leaf, c.meta, false, c.path);
  // Shared with live or a release: copy, change the copy, rename over.
  struct stat sst;
  CM_ASSIGN_OR_RETURN(UniqueFd src, OpenRegular(p.dir.get(), p.leaf, c.path, &sst));
  NewFile f(p.dir.get());
  CM_RETURN_IF_ERROR(f.Open(c.path));
  Status s = CopyFileData(src.get(), f.fd.get());
  if (!s.ok()) return Status(s.code(), c.path + ": " + s.message());
  pack::Meta m = c.meta;
  if (m.mtime_ns == 0) m.mtime_ns = MetaFromStat(sst).mtime_ns;  // keep the old mtime
  if (!m.has_owner) {  // keep the old owner
    m.has_owner = true;
    m.uid = sst.st_uid;
    m.gid = sst.st_gid;
  }
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), m, c.path));
  CM_RETURN_IF_ERROR(f.Install(p.leaf, c.path));
  stats_.bytes_written += static_cast<uint64_t>(sst.st_size);
  return Status::Ok();
}

Status Stager::Symlink(const pack::Command& c) {
  if (c.path2.empty() || c.path2.find('\0') != std::string::npos)
    return Error(Code::kCorrupt, c.path + ": bad symlink target");
  CM_ASSIGN_OR_RETURN(ParentRef p, Parent(tree_fd_, c.path));
  TempEntry tmp(p.dir.get(), TempLeaf());
  if (::symlinkat(c.path2.c_str(), p.dir.get(), tmp.name().c_str()) != 0) {
    int e = errno;
    tmp.Release();
    return ErrnoError(c.path, e);
  }
  pack::Meta m = c.meta;
  CM_RETURN_IF_ERROR(ApplyMetaAt(p.dir.get(), tmp.name(), m, /*is_symlink=*/true, c.path));
  if (::renameat(p.dir.get(), tmp.name().c_str(), p.dir.get(), p.leaf.c_str()) != 0) return ShapeError(c.path, errno);
  tmp.Release();
  ++stats_.symlinks;
  return Status::Ok();
}

}  // namespace cm::apply
