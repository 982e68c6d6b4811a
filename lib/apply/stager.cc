#include "apply/stager.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "apply/fs_ops.h"
#include "apply/safe_path.h"
#include "delta/instructions.h"
#include "delta/tree_walk.h"
#include "util/crash_point.h"
#include "util/hash.h"

namespace cm::apply {
namespace {

constexpr size_t kIoChunk = 256 * 1024;
// Bases at least this big are hashed in a second thread while patching (or,
// when the base's hash is remembered, the output is).
constexpr uint64_t kParallelHashMin = 4 << 20;

// Parent of a command's path; a missing parent means the tree is not the one
// the assignment was made against.
Status MissingParent(const std::string& path, const Status& s) {
  if (s.code() != Code::kNotFound) return s;
  return Error(Code::kBaseMismatch, path + ": parent directory missing (" + s.message() + ")");
}

Result<ParentRef> Parent(int tree_fd, const std::string& path) {
  auto p = OpenParentBeneath(tree_fd, path);
  if (!p.ok()) return MissingParent(path, p.status());
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

// The mtime of a directory whose entries a command is about to change.
// Staged directories already carry their final metadata (tree_clone.h), so
// every command that adds, replaces or removes an entry puts the parent's
// mtime back afterwards (directories with a logged record get theirs at
// commit anyway). A command that fails leaves a stage that is discarded.
class KeepMtime {
 public:
  explicit KeepMtime(int dir_fd) : fd_(dir_fd) { have_ = ::fstat(fd_, &st_) == 0; }
  Status Restore(const std::string& path) const {
    if (!have_) return ErrnoError(path + ": parent directory", EBADF);
    const timespec ts[2] = {{0, UTIME_OMIT}, st_.st_mtim};
    if (::futimens(fd_, ts) != 0) return ErrnoError(path + ": parent directory", errno);
    return Status::Ok();
  }

 private:
  int fd_;
  bool have_ = false;
  struct stat st_;
};

// Hashes a file that this thread is appending to, from a second thread: it
// reads behind the writer with pread (the bytes are in the page cache) and
// hashes them while the writer builds the rest, so on two cores the hash of
// a large patched file costs little wall time. It hashes what the file holds,
// not the writer's buffers. Poke() after writing; Finish() once the file is
// complete. Destroying it without Finish() abandons the hash.
class TrailingHasher {
 public:
  explicit TrailingHasher(int fd) : fd_(fd), thread_([this] { Run(); }) {}
  ~TrailingHasher() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  TrailingHasher(const TrailingHasher&) = delete;
  TrailingHasher& operator=(const TrailingHasher&) = delete;

  void Poke() {
    {
      std::lock_guard<std::mutex> g(mu_);
      ++pokes_;
    }
    cv_.notify_one();
  }
  // The hash of the first `size` bytes; kCorrupt if the file is shorter.
  Result<Hash256> Finish(uint64_t size) {
    {
      std::lock_guard<std::mutex> g(mu_);
      end_ = size;
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
    return result_;
  }

 private:
  void Run() {
    std::vector<char> buf(1 << 20);
    Hasher h;
    uint64_t pos = 0, seen = 0;
    for (;;) {
      bool done, stop;
      uint64_t end;
      {
        std::lock_guard<std::mutex> g(mu_);
        done = done_, stop = stop_, end = end_;
      }
      if (stop) return;
      size_t want = buf.size();
      if (done) want = static_cast<size_t>(std::min<uint64_t>(want, end - pos));
      ssize_t n = want ? ::pread(fd_, buf.data(), want, static_cast<off_t>(pos)) : 0;
      if (n < 0) {
        if (errno == EINTR) continue;
        result_ = ErrnoError("hash of the patched file", errno);
        return;
      }
      if (n > 0) {
        h.Update(buf.data(), static_cast<size_t>(n));
        pos += static_cast<uint64_t>(n);
        continue;
      }
      if (done) {  // all there is
        result_ = pos == end ? Result<Hash256>(h.Finish()) : Error(Code::kCorrupt, "patched file shorter than written");
        return;
      }
      // Caught up with the writer: wait for more (it pokes after each step;
      // the timeout covers bytes written during a long step).
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait_for(l, std::chrono::microseconds(500), [&] { return pokes_ != seen || done_ || stop_; });
      seen = pokes_;
    }
  }

  int fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t pokes_ = 0, end_ = 0;
  bool done_ = false, stop_ = false;
  Result<Hash256> result_ = Error(Code::kFailure, "hash not finished");
  std::thread thread_;  // last: starts after the members it uses exist
};

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
  if (c.op == pack::Opcode::kRename || c.op == pack::Opcode::kCopy || c.op == pack::Opcode::kTouch)
    CM_RETURN_IF_ERROR(ValidateRelPath(c.path2));
  if (c.op != pack::Opcode::kTouch) touch_copies_.clear();
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
    case pack::Opcode::kTouch: st = Touch(c); break;
    default: return Error(Code::kCorrupt, c.path + ": unknown command");
  }
  if (st.ok()) CrashPoint("stage.command");
  return st;
}

Status Stager::Mkdir(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(Place p, Locate(c.path));
  KeepMtime parent(p.dir);
  if (::mkdirat(p.dir, p.leaf.c_str(), 0700) != 0) {
    if (errno != EEXIST) return ErrnoError(c.path, errno);
    CM_ASSIGN_OR_RETURN(struct stat st, LstatAt(p.dir, p.leaf));
    if (!S_ISDIR(st.st_mode)) return Mismatch(c.path, "exists and is not a directory");
  } else {
    CM_RETURN_IF_ERROR(parent.Restore(c.path));
  }
  CM_RETURN_IF_ERROR(DirMeta(p, c));
  ++stats_.dirs;
  return Status::Ok();
}

Result<Stager::Place> Stager::Locate(const std::string& path) {
  Place p;
  auto dir = walker_.Parent(path, &p.leaf);
  if (!dir.ok()) return MissingParent(path, dir.status());
  p.dir = *dir;
  return p;
}

Status Stager::Spend(uint64_t bytes, const std::string& path) {
  if (bytes > budget_)
    return Error(Code::kNoSpace, path + ": " + std::to_string(bytes) + " bytes would exceed the free space left (" +
                                     std::to_string(budget_) + " bytes beyond the margin)");
  budget_ -= bytes;
  return Status::Ok();
}

std::vector<char>& Stager::IoBuffer() {
  if (io_buf_.size() != kIoChunk) io_buf_.resize(kIoChunk);  // once, not zeroed per command
  return io_buf_;
}

Status Stager::DirMeta(const Place& p, const pack::Command& c) {
  // Logged in any case (the last record wins at commit, and the commit skips
  // a directory that already has it). Applied now too unless the mode would
  // take owner rwx away while the tree is staged.
  CM_RETURN_IF_ERROR(log_->Set(c.path, c.meta));
  if ((c.meta.mode & 0700) == 0700) return ApplyMetaAt(p.dir, p.leaf, c.meta, /*is_symlink=*/false, c.path);
  if (c.op == pack::Opcode::kMkdir &&  // a new directory gets the staging mode; others keep theirs
      ::fchmodat(p.dir, p.leaf.c_str(), StagingDirMode(c.meta.mode), 0) != 0)
    return ErrnoError(c.path, errno);
  return Status::Ok();
}

Status Stager::Create(const pack::Command& c, ByteSource* data) {
  CM_RETURN_IF_ERROR(Spend(c.size, c.path));
  CM_ASSIGN_OR_RETURN(Place p, Locate(c.path));
  KeepMtime parent(p.dir);
  NewFile f(p.dir);
  CM_RETURN_IF_ERROR(f.Open(c.path));
  Hasher h;
  uint64_t total = 0;
  if (data) {
    std::vector<char>& buf = IoBuffer();
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
  // v3 carries no content hash: the data hash and chunk table covered the
  // bytes; the hash computed here is still remembered for a later patch.
  const Hash256 got = h.Finish();
  if (c.has_hash && got != c.hash) return Error(Code::kCorrupt, c.path + ": content hash mismatch");
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), c.meta, c.path));
  RememberHash(f.fd.get(), got);
  CM_RETURN_IF_ERROR(f.Install(p.leaf, c.path));
  CM_RETURN_IF_ERROR(parent.Restore(c.path));
  ++stats_.created;
  stats_.bytes_written += total;
  return Status::Ok();
}

Status Stager::Patch(const pack::Command& c, ByteSource* data) {
  CM_ASSIGN_OR_RETURN(Place p, Locate(c.path));
  struct stat st;
  CM_ASSIGN_OR_RETURN(UniqueFd base, OpenRegular(p.dir, p.leaf, c.path, &st));
  if (static_cast<uint64_t>(st.st_size) != c.base_size)
    return Mismatch(c.path, "base size " + std::to_string(st.st_size) + ", expected " + std::to_string(c.base_size));
  if (!data) return Error(Code::kCorrupt, c.path + ": patch without instructions");
  CM_RETURN_IF_ERROR(Spend(c.size, c.path));

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

  KeepMtime parent(p.dir);
  NewFile f(p.dir);
  Status s = f.Open(c.path);
  if (!s.ok()) {
    (void)check_base();
    return s;
  }
  delta::PatchApplier applier(base.get(), c.base_size, f.fd.get(), c.size);
  // The output is hashed as it is written: inline, or by a second thread
  // reading behind the writer when that thread is not busy with the base.
  Hasher out_hasher;
  std::optional<TrailingHasher> trailing;
  if (!parallel && c.size >= kParallelHashMin && std::thread::hardware_concurrency() > 1)
    trailing.emplace(f.fd.get());
  else
    applier.set_output_hasher(&out_hasher);
  std::vector<char>& buf = IoBuffer();
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
    if (trailing) trailing->Poke();
  }
  // A wrong base explains a failed patch better than the patch's own error.
  CM_RETURN_IF_ERROR(check_base());
  if (!s.ok()) return Status(s.code(), c.path + ": " + s.message());
  Hash256 out_hash;
  if (trailing) {
    auto h = trailing->Finish(c.size);
    if (!h.ok()) return Status(h.status().code(), c.path + ": " + h.status().message());
    out_hash = *h;
  } else {
    out_hash = out_hasher.Finish();
  }
  if (c.has_hash && out_hash != c.hash) return Error(Code::kCorrupt, c.path + ": patched content hash mismatch");
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), c.meta, c.path));
  RememberHash(f.fd.get(), out_hash);
  CM_RETURN_IF_ERROR(f.Install(p.leaf, c.path));
  CM_RETURN_IF_ERROR(parent.Restore(c.path));
  ++stats_.patched;
  stats_.bytes_written += applier.written();
  return Status::Ok();
}

Status Stager::Remove(const pack::Command& c) {
  std::string leaf;
  auto dir = walker_.Parent(c.path, &leaf);
  if (!dir.ok()) {
    if (dir.status().code() == Code::kNotFound) return Status::Ok();  // already gone
    return dir.status();
  }
  const int pdir = *dir;
  auto st = LstatAt(pdir, leaf);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Status::Ok() : st.status();
  KeepMtime parent(pdir);
  if (S_ISDIR(st->st_mode)) {
    CM_RETURN_IF_ERROR(log_->Removed(c.path));
    Status s = RemoveTreeAt(pdir, leaf);
    if (!s.ok()) return Status(s.code(), c.path + ": " + s.message());
  } else if (::unlinkat(pdir, leaf.c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoError(c.path, errno);
  }
  CM_RETURN_IF_ERROR(parent.Restore(c.path));
  if (S_ISDIR(st->st_mode)) walker_.Forget();  // it may hold removed directories open (pdir too: last use above)
  ++stats_.removed;
  return Status::Ok();
}

Status Stager::Rename(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(ParentRef from, Parent(tree_fd_, c.path));
  CM_ASSIGN_OR_RETURN(ParentRef to, Parent(tree_fd_, c.path2));
  auto st = LstatAt(from.dir.get(), from.leaf);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Mismatch(c.path, "rename source missing") : st.status();
  if (S_ISDIR(st->st_mode)) CM_RETURN_IF_ERROR(log_->Renamed(c.path, c.path2));
  walker_.Forget();  // a directory it holds open may move
  KeepMtime from_parent(from.dir.get()), to_parent(to.dir.get());
  if (::renameat(from.dir.get(), from.leaf.c_str(), to.dir.get(), to.leaf.c_str()) != 0)
    return ShapeError(c.path2, errno);
  if (S_ISDIR(st->st_mode)) {  // a moved directory's ".." entry changes
    const timespec ts[2] = {{0, UTIME_OMIT}, st->st_mtim};
    if (::utimensat(to.dir.get(), to.leaf.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoError(c.path2, errno);
  }
  CM_RETURN_IF_ERROR(to_parent.Restore(c.path2));
  CM_RETURN_IF_ERROR(from_parent.Restore(c.path));
  ++stats_.renamed;
  return Status::Ok();
}

Status Stager::Copy(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(ParentRef from, Parent(tree_fd_, c.path));
  CM_ASSIGN_OR_RETURN(ParentRef to, Parent(tree_fd_, c.path2));
  struct stat st;
  CM_ASSIGN_OR_RETURN(UniqueFd src, OpenRegular(from.dir.get(), from.leaf, c.path, &st));
  CM_RETURN_IF_ERROR(Spend(static_cast<uint64_t>(st.st_size), c.path2));
  KeepMtime parent(to.dir.get());
  NewFile f(to.dir.get());
  CM_RETURN_IF_ERROR(f.Open(c.path2));
  Status s = CopyFileData(src.get(), f.fd.get(), &reflink_);
  if (!s.ok()) return Status(s.code(), c.path2 + ": " + s.message());
  // A copy keeps the source's metadata (like cp -p).
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), MetaFromStat(st), c.path2));
  CM_RETURN_IF_ERROR(f.Install(to.leaf, c.path2));
  CM_RETURN_IF_ERROR(parent.Restore(c.path2));
  ++stats_.copied;
  stats_.bytes_written += static_cast<uint64_t>(st.st_size);
  return Status::Ok();
}

Status Stager::SetMeta(const pack::Command& c) {
  CM_ASSIGN_OR_RETURN(Place p, Locate(c.path));
  auto st = LstatAt(p.dir, p.leaf);
  if (!st.ok()) return st.status().code() == Code::kNotFound ? Mismatch(c.path, "missing") : st.status();
  ++stats_.meta;
  if (S_ISDIR(st->st_mode)) return DirMeta(p, c);
  if (S_ISLNK(st->st_mode)) return ApplyMetaAt(p.dir, p.leaf, c.meta, /*is_symlink=*/true, c.path);
  if (!S_ISREG(st->st_mode)) return Error(Code::kUnsafePath, c.path + ": special file");
  // A file with one link was written by this stage: nobody else sees it.
  if (st->st_nlink == 1) return ApplyMetaAt(p.dir, p.leaf, c.meta, false, c.path);
  // Shared with live or a release: copy, change the copy, rename over.
  struct stat sst;
  CM_ASSIGN_OR_RETURN(UniqueFd src, OpenRegular(p.dir, p.leaf, c.path, &sst));
  CM_RETURN_IF_ERROR(Spend(static_cast<uint64_t>(sst.st_size), c.path));
  KeepMtime parent(p.dir);
  NewFile f(p.dir);
  CM_RETURN_IF_ERROR(f.Open(c.path));
  Status s = CopyFileData(src.get(), f.fd.get(), &reflink_);
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
  CM_RETURN_IF_ERROR(parent.Restore(c.path));
  stats_.bytes_written += static_cast<uint64_t>(sst.st_size);
  return Status::Ok();
}

Status Stager::Symlink(const pack::Command& c) {
  if (c.path2.empty() || c.path2.find('\0') != std::string::npos)
    return Error(Code::kCorrupt, c.path + ": bad symlink target");
  CM_ASSIGN_OR_RETURN(Place p, Locate(c.path));
  KeepMtime parent(p.dir);
  TempEntry tmp(p.dir, TempLeaf());
  if (::symlinkat(c.path2.c_str(), p.dir, tmp.name().c_str()) != 0) {
    int e = errno;
    tmp.Release();
    return ErrnoError(c.path, e);
  }
  pack::Meta m = c.meta;
  CM_RETURN_IF_ERROR(ApplyMetaAt(p.dir, tmp.name(), m, /*is_symlink=*/true, c.path));
  if (::renameat(p.dir, tmp.name().c_str(), p.dir, p.leaf.c_str()) != 0) return ShapeError(c.path, errno);
  tmp.Release();
  CM_RETURN_IF_ERROR(parent.Restore(c.path));
  ++stats_.symlinks;
  return Status::Ok();
}

// TOUCH: the staged tree is walked in the delta's walk order (names
// bytewise within a directory, a directory before its children), entering
// only directories whose subtree can hold a path of the run, and every file
// and directory from c.path to c.path2 gets the run's mtime (through
// SetMeta/DirMeta: a shared file is copied first, a directory's change is
// logged). Their number must be the run's count: otherwise the tree is not
// the one the delta was made from.
struct Stager::TouchWalk {
  const pack::Command* c = nullptr;
  uint64_t seen = 0;
  bool past = false;  // beyond the run's last path
};

Status Stager::Touch(const pack::Command& c) {
  if (c.meta.mtime_ns == 0 || c.size == 0 || delta::ComparePaths(c.path, c.path2) > 0)
    return Error(Code::kCorrupt, c.path + ": malformed touch command");
  if (!logged_dirs_) {
    CM_ASSIGN_OR_RETURN(DirMetaMap m, ReplayDirMeta(log_->path()));
    logged_dirs_ = std::move(m);
  }
  TouchWalk t;
  t.c = &c;
  CM_RETURN_IF_ERROR(TouchDir(&t, ""));
  if (t.seen != c.size)
    return Mismatch(c.path, "the run to " + c.path2 + " has " + std::to_string(t.seen) + " files and directories, the "
                                "assignment says " + std::to_string(c.size));
  return Status::Ok();
}

Status Stager::TouchDir(TouchWalk* t, const std::string& dir) {
  UniqueFd fd(dir.empty() ? ::openat(tree_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                          : ::openat(tree_fd_, dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoError(dir.empty() ? "staged tree" : dir, errno);
  std::vector<std::string> names;
  {
    DIR* d = ::fdopendir(::dup(fd.get()));
    if (d == nullptr) return ErrnoError(dir, errno);
    while (struct dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      names.push_back(std::move(n));
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());  // bytewise, as the walk
  const pack::Command& c = *t->c;
  // Files copied into this directory change its mtime: put back once, at
  // the end (as KeepMtime does per command elsewhere).
  KeepMtime keep(fd.get());
  bool changed = false;
  auto restore = [&]() { return changed ? keep.Restore(dir.empty() ? "." : dir) : Status::Ok(); };
  for (const std::string& name : names) {
    if (t->past) return restore();
    const std::string path = dir.empty() ? name : dir + "/" + name;
    if (delta::ComparePaths(path, c.path2) > 0) {
      t->past = true;
      return restore();
    }
    CM_ASSIGN_OR_RETURN(struct stat st, LstatAt(fd.get(), name));
    const bool in_run = delta::ComparePaths(path, c.path) >= 0;
    if (in_run && S_ISREG(st.st_mode)) {
      CM_RETURN_IF_ERROR(TouchFile(t, fd.get(), name, path, st, &changed));
      continue;
    }
    if (in_run && !S_ISLNK(st.st_mode)) CM_RETURN_IF_ERROR(TouchOne(t, path, st));
    // A subtree before the run's first path holds none of it unless the
    // first path is inside.
    if (S_ISDIR(st.st_mode) && (in_run || (c.path.size() > path.size() && c.path.compare(0, path.size(), path) == 0 &&
                                           c.path[path.size()] == '/')))
      CM_RETURN_IF_ERROR(TouchDir(t, path));
  }
  return restore();
}

// TOUCH of a regular file, in its open directory: what SetMeta does for a
// new mtime (a file written by this stage is changed in place, a shared one
// copied, the copy changed and renamed over it), without resolving the path
// again and with the directory's mtime put back once by TouchDir.
Status Stager::TouchFile(TouchWalk* t, int dir_fd, const std::string& name, const std::string& path,
                         const struct stat& st, bool* dir_changed) {
  ++t->seen;
  if (t->seen > t->c->size) return Status::Ok();  // reported as a count mismatch
  ++stats_.touched;
  const int64_t mtime = t->c->meta.mtime_ns;
  if (MetaFromStat(st).mtime_ns == mtime) return Status::Ok();  // already so (an added or patched file)
  const timespec ts[2] = {{0, UTIME_OMIT}, NsToTimespec(mtime)};
  // A file with one link was written by this stage: nobody else sees it.
  if (st.st_nlink == 1) {
    if (::utimensat(dir_fd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) return ErrnoError(path, errno);
    return Status::Ok();
  }
  UniqueFd src(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!src) return ErrnoError(path, errno);
  struct stat sst;
  if (::fstat(src.get(), &sst) != 0) return ErrnoError(path, errno);
  if (!S_ISREG(sst.st_mode) || sst.st_ino != st.st_ino || sst.st_dev != st.st_dev)
    return Error(Code::kIo, path + ": changed while being staged");
  CM_RETURN_IF_ERROR(Spend(static_cast<uint64_t>(sst.st_size), path));
  NewFile f(dir_fd);
  CM_RETURN_IF_ERROR(f.Open(path));
  Status s = CopyFileData(src.get(), f.fd.get(), &reflink_);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  pack::Meta m;
  m.mode = sst.st_mode & 07777;
  m.has_owner = true;  // the old owner
  m.uid = sst.st_uid;
  m.gid = sst.st_gid;
  m.mtime_ns = mtime;
  CM_RETURN_IF_ERROR(ApplyMetaFd(f.fd.get(), m, path));
  struct stat nst;
  if (::fstat(f.fd.get(), &nst) != 0) return ErrnoError(path, errno);
  *dir_changed = true;
  CM_RETURN_IF_ERROR(f.Install(name, path));
  stats_.bytes_written += static_cast<uint64_t>(sst.st_size);
  TouchCopy rec;
  rec.path = path;
  rec.size = static_cast<uint64_t>(sst.st_size);
  rec.src_ino = static_cast<uint64_t>(sst.st_ino);
  rec.src_mtime_ns = MetaFromStat(sst).mtime_ns;
  rec.ino = static_cast<uint64_t>(nst.st_ino);
  rec.mtime_ns = MetaFromStat(nst).mtime_ns;
  if (static_cast<uint64_t>(nst.st_size) == rec.size) touch_copies_.push_back(std::move(rec));
  return Status::Ok();
}

Status Stager::TouchOne(TouchWalk* t, const std::string& path, const struct stat& st) {
  ++t->seen;
  if (t->seen > t->c->size) return Status::Ok();  // reported as a count mismatch
  pack::Command m;
  m.op = pack::Opcode::kSetMeta;
  m.path = path;
  if (S_ISDIR(st.st_mode)) {
    auto it = logged_dirs_->find(path);
    if (it != logged_dirs_->end()) {
      m.meta = it->second;
    } else {
      m.meta.mode = st.st_mode & 07777;
    }
    m.meta.mtime_ns = t->c->meta.mtime_ns;
    (*logged_dirs_)[path] = m.meta;
  } else if (S_ISREG(st.st_mode)) {
    m.meta.mode = st.st_mode & 07777;
    m.meta.mtime_ns = t->c->meta.mtime_ns;
    if (MetaFromStat(st).mtime_ns == m.meta.mtime_ns) {  // already so (an added or patched file)
      ++stats_.touched;
      return Status::Ok();
    }
  } else {
    return Error(Code::kUnsafePath, path + ": special file");
  }
  CM_RETURN_IF_ERROR(SetMeta(m));
  --stats_.meta;  // counted as touched, not as a SET_META
  ++stats_.touched;
  return Status::Ok();
}

}  // namespace cm::apply
