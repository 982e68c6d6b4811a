#include "delta/tree_diff.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <zstd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "delta/manifest.h"
#include "delta/tree_walk.h"
#include "util/file_util.h"
#include "util/hash.h"

namespace cm::delta {
namespace {

// Files at least this big hash in helper threads while the delta runs.
constexpr uint64_t kThreadedHashBytes = 4u << 20;
// Instruction streams up to this size stay in memory; bigger ones spill to
// an unlinked temporary file so huge changed files need no huge buffers.
constexpr size_t kSpillBytes = 64u << 20;
// High-entropy files (compressed media) with nothing to copy in their first
// few MiB are sent whole without scanning the rest.
constexpr uint64_t kEntropyProbeBytes = 8u << 20;

constexpr uint64_t kPopulateMax = 1ull << 30;
constexpr uint64_t kReadNotMapBytes = 1u << 20;
// zstd-prefix deltas (TryZstdDelta): files up to this size, at this level.
// On three 0.169 -> 0.170 level 6 gave 196 KB for 0.29 s of cm-delta CPU,
// level 3 243 KB (0.21 s), 9/19 by size 186 KB (0.49 s): 6 keeps cm-delta
// | cm-pack within rsync's time.
constexpr uint64_t kZstdDeltaSmallFile = 1 << 20;
constexpr int kZstdDeltaLevel = 6;
// Larger files (up to the base limit, 8 MiB): level 9. A rebuilt shared
// library (libruby-3.1.so, 3.8 MB, 3.1.2-7+deb12u1 -> 3.1.7+really3.1.2):
// COPY/INSERT 692 KB of instructions, about 320 KB once cm-pack compressed
// them; zstd with the old version as prefix: level 3 275 KB (0.02 s), level 6
// 1.58 MB (its search misses the prefix), level 9 228 KB (0.36 s), level 19
// 195 KB (8 s).
constexpr int kZstdDeltaLevelLarge = 9;
// Added files smaller than this are not worth a delta against a moved base.
constexpr uint64_t kMinMoveDelta = 256;
// Old files of one size kept as identical bases of added files (renames and
// copies), the first in walk order: bounds what an added file reads.
constexpr size_t kMaxSameSizeBases = 4;
// A TIMES entry (two front-coded paths, a count, an mtime) replaces the META
// entries of a run when it spares at least this many.
constexpr uint64_t kMinTimeRunChanges = 4;

const uint8_t kEmpty[1] = {0};

// A read-only private mapping of a whole regular file.
class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile() {
    if (map_ != nullptr) ::munmap(map_, size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // `name` in the open directory `dir` (AT_FDCWD or -1: `path` itself);
  // `path` names it in errors.
  Status Open(const std::string& path, int dir = AT_FDCWD, const std::string* name = nullptr) {
    const bool rel = dir >= 0 && name != nullptr;
    fd_.reset(::openat(rel ? dir : AT_FDCWD, rel ? name->c_str() : path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd_) return ErrnoError(path, errno);
    struct stat st;
    if (::fstat(fd_.get(), &st) != 0) return ErrnoError(path, errno);
    if (!S_ISREG(st.st_mode)) return Error(Code::kIo, path + ": changed during the walk (not a file)");
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) return Status::Ok();
    if (size_ <= kReadNotMapBytes) {
      // A small file is read: a mapping's munmap (a TLB shootdown) cost more
      // than the copy (perlmods, 1,199 files each side: 2,403 munmaps took
      // 0.11 s of cm-delta's 0.30 s of system calls).
      buf_ = std::make_unique_for_overwrite<uint8_t[]>(size_);
      uint64_t got = 0;
      while (got < size_) {
        const ssize_t n = ::pread(fd_.get(), buf_.get() + got, size_ - got, static_cast<off_t>(got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoError(path, errno);
        if (n == 0) return Error(Code::kIo, path + ": changed during the walk (shrank)");
        got += static_cast<uint64_t>(n);
      }
      return Status::Ok();
    }
    // Prefaulting the whole mapping at once is much cheaper than a page
    // fault per 4 KiB; files too big to sit in memory are faulted lazily.
    int flags = MAP_PRIVATE | (size_ <= kPopulateMax ? MAP_POPULATE : 0);
    void* p = ::mmap(nullptr, size_, PROT_READ, flags, fd_.get(), 0);
    if (p == MAP_FAILED) return ErrnoError(path, errno);
    map_ = p;
    return Status::Ok();
  }
  const uint8_t* data() const {
    return buf_ ? buf_.get() : map_ != nullptr ? static_cast<const uint8_t*>(map_) : kEmpty;
  }
  uint64_t size() const { return size_; }

 private:
  UniqueFd fd_;
  void* map_ = nullptr;
  std::unique_ptr<uint8_t[]> buf_;  // small files: read, not mapped
  uint64_t size_ = 0;
};

// Computes a hash now or in a helper thread, by size.
class AsyncHash {
 public:
  AsyncHash(const uint8_t* p, uint64_t n) : p_(p), n_(n) {
    if (n >= kThreadedHashBytes) thread_.emplace([this] { hash_ = HashBytes(p_, n_); });
  }
  ~AsyncHash() {
    if (thread_) thread_->join();
  }
  const Hash256& Get() {
    if (thread_) {
      thread_->join();
      thread_.reset();
    } else if (!done_) {
      hash_ = HashBytes(p_, n_);
    }
    done_ = true;
    return hash_;
  }

 private:
  const uint8_t* p_;
  uint64_t n_;
  Hash256 hash_{};
  bool done_ = false;
  std::optional<std::thread> thread_;
};

// Buffers one instruction stream: memory first, then an unlinked temp file.
class SpillSink : public ByteSink {
 public:
  Status Write(const void* buf, size_t n) override {
    size_ += n;
    if (!fd_ && mem_.size() + n <= kSpillBytes) {
      mem_.append(static_cast<const char*>(buf), n);
      return Status::Ok();
    }
    if (!fd_) {
      CM_RETURN_IF_ERROR(OpenTemp());
      CM_RETURN_IF_ERROR(WriteFull(fd_.get(), mem_.data(), mem_.size()));
      std::string().swap(mem_);
    }
    return WriteFull(fd_.get(), buf, n);
  }
  uint64_t size() const { return size_; }
  template <typename F>
  Status ForEachChunk(F&& f) {
    if (!fd_) return f(mem_.data(), mem_.size());
    std::string buf(1 << 20, '\0');
    for (uint64_t off = 0; off < size_;) {
      CM_ASSIGN_OR_RETURN(size_t got, PreadFull(fd_.get(), buf.data(), buf.size(), off));
      if (got == 0) return Error(Code::kIo, "temporary file shrank");
      CM_RETURN_IF_ERROR(f(buf.data(), got));
      off += got;
    }
    return Status::Ok();
  }

 private:
  Status OpenTemp() {
    const char* t = std::getenv("TMPDIR");
    std::string dir = t != nullptr && *t != '\0' ? t : "/tmp";
    fd_.reset(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (fd_) return Status::Ok();
    std::string tmpl = dir + "/cm-delta-XXXXXX";
    fd_.reset(::mkstemp(tmpl.data()));
    if (!fd_) return ErrnoError(dir + ": temporary file", errno);
    ::unlink(tmpl.c_str());
    return Status::Ok();
  }
  std::string mem_;
  UniqueFd fd_;
  uint64_t size_ = 0;
};

bool MetaDiffers(const WalkEntry& a, const WalkEntry& b, bool times) {
  return a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || (times && a.mtime_ns != b.mtime_ns);
}

DeltaEntry EntryFrom(Op op, const WalkEntry& w, bool times = true) {
  DeltaEntry e;
  e.op = op;
  e.kind = w.kind;
  e.path = w.path;
  e.mode = w.mode;
  e.uid = w.uid;
  e.gid = w.gid;
  e.mtime_ns = times ? w.mtime_ns : 0;
  e.size = w.kind == Kind::kFile ? w.size : 0;
  return e;
}

class Differ {
 public:
  Differ(const std::string& old_root, const std::string& new_root, const TreeDiffOptions& opts,
         DeltaTableWriter* table, DiffObserver* obs)
      : opts_(opts), table_(table), obs_(obs), filter_(opts.excludes),
        old_(old_root, &filter_, [this](const std::string& p, const std::string& w) { Warn(old_.FullPath(p), w); }),
        new_(new_root, &filter_, [this](const std::string& p, const std::string& w) { Warn(new_.FullPath(p), w); }) {}

  Result<DiffSummary> Run() {
    CM_RETURN_IF_ERROR(new_.Start(false));
    CM_RETURN_IF_ERROR(old_.Start(opts_.old_may_be_missing));
    runs_on_ = opts_.time_runs && opts_.times && opts_.excludes.empty() && !opts_.listing_only;
    if (opts_.moves || runs_on_) CM_RETURN_IF_ERROR(Prepass());
    if (table_ != nullptr)
      CM_RETURN_IF_ERROR(table_->Begin((opts_.checksum ? kTableFlagChecksum : 0) |
                                       (opts_.times ? 0 : kTableFlagNoTimes) | (runs_.empty() ? 0 : kTableFlagTimeRuns)));

    WalkEntry o, n;
    CM_ASSIGN_OR_RETURN(bool have_o, old_.Next(&o));
    CM_ASSIGN_OR_RETURN(bool have_n, new_.Next(&n));
    while (have_o || have_n) {
      int c = !have_o ? 1 : !have_n ? -1 : ComparePaths(o.path, n.path);
      bool step_old = c <= 0, step_new = c >= 0;
      if (step_new) EnterRun(n);
      if (c < 0) {
        CM_RETURN_IF_ERROR(Remove(o));
      } else if (c > 0) {
        CM_RETURN_IF_ERROR(Add(n));
      } else if (o.kind != n.kind) {
        CM_RETURN_IF_ERROR(Remove(o));
        CM_RETURN_IF_ERROR(Add(n));
      } else if (n.kind == Kind::kDir) {
        if (MetaDiffers(o, n, TimesMatter())) CM_RETURN_IF_ERROR(Emit(Entry(Op::kMeta, n), {}));
      } else if (n.kind == Kind::kSymlink) {
        if (o.link_target != n.link_target) {
          DeltaEntry e = Entry(Op::kModify, n);
          e.link_target = n.link_target;
          CM_RETURN_IF_ERROR(Emit(e, {}));
        }
      } else {
        CM_RETURN_IF_ERROR(CompareFiles(o, n));
      }
      if (step_new) {
        ++summary_.scanned;
        if (obs_ != nullptr) obs_->OnProgress(summary_);
        CM_ASSIGN_OR_RETURN(have_n, new_.Next(&n));
      }
      if (step_old) {
        CM_ASSIGN_OR_RETURN(have_o, old_.Next(&o));
      }
    }
    // The removals held back for moved files' bases (see Prepass).
    for (const DeltaEntry& e : deferred_removes_) CM_RETURN_IF_ERROR(Emit(e, {}));
    if (runs_on_) {
      if (run_index_ != run_total_) return Error(Code::kIo, new_.root() + ": changed during the diff");
      for (const TimeRun& r : runs_) {
        DeltaEntry e;
        e.op = Op::kTimes;
        e.kind = Kind::kFile;
        e.path = r.first;
        e.last_path = r.last;
        e.mtime_ns = r.mtime_ns;
        e.size = r.count;
        CM_RETURN_IF_ERROR(Emit(e, {}));
      }
    }
    if (table_ != nullptr) CM_RETURN_IF_ERROR(table_->End());
    return summary_;
  }

 private:
  DeltaEntry Entry(Op op, const WalkEntry& w) const { return EntryFrom(op, w, opts_.times); }

  void Warn(const std::string& path, const std::string& what) {
    if (obs_ != nullptr) obs_->OnWarning(path, what);
  }

  static std::string BaseName(const std::string& path) {
    auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
  }

  // A names-only merge walk of both trees before the real one: the files
  // removed one by one (their directory stays) that share their name with
  // an added file are candidate bases for it (a moved or renamed file).
  // Their REMOVEs are held back to the end of the table, so that the server
  // still has them when the added file is built from one of them.
  Status Prepass() {
    auto quiet = [](const std::string&, const std::string&) {};
    // The roots the main walkers resolved (a symlinked root is read once).
    TreeWalker o(old_.root(), &filter_, quiet);
    TreeWalker n(new_.root(), &filter_, quiet);
    CM_RETURN_IF_ERROR(n.Start(false));
    CM_RETURN_IF_ERROR(o.Start(opts_.old_may_be_missing));
    std::vector<std::pair<std::string, uint64_t>> removed;
    std::unordered_set<std::string> added_names;
    std::unordered_set<uint64_t> added_sizes;
    auto index_old = [&](const WalkEntry& w) {
      if (w.size < kMinMoveDelta) return;
      auto& v = old_by_size_[w.size];
      if (v.size() < kMaxSameSizeBases) v.push_back(w.path);
    };
    WalkEntry a, b;
    CM_ASSIGN_OR_RETURN(bool have_o, o.Next(&a));
    CM_ASSIGN_OR_RETURN(bool have_n, n.Next(&b));
    while (have_o || have_n) {
      int c = !have_o ? 1 : !have_n ? -1 : ComparePaths(a.path, b.path);
      if (c >= 0 && runs_on_) {
        // Likely an mtime-only change (a file of another size is a MODIFY,
        // which carries its mtime anyway).
        const bool changed = c == 0 && a.kind == b.kind && a.mtime_ns != b.mtime_ns && a.size == b.size;
        NoteRunEntry(b, changed);
      }
      if (c < 0) {
        if (a.kind == Kind::kDir) o.SkipChildren();
        if (a.kind == Kind::kFile) {
          removed.emplace_back(a.path, a.size);
          index_old(a);
        }
      } else if (c > 0) {
        if (b.kind == Kind::kFile) {
          added_names.insert(BaseName(b.path));
          added_sizes.insert(b.size);
        }
      } else if (a.kind != b.kind) {
        if (a.kind == Kind::kDir) o.SkipChildren();
        if (b.kind == Kind::kFile) {
          added_names.insert(BaseName(b.path));
          added_sizes.insert(b.size);
        }
      } else if (a.kind == Kind::kFile) {
        index_old(a);  // kept: a base until the table changes it
      }
      if (c <= 0) {
        CM_ASSIGN_OR_RETURN(have_o, o.Next(&a));
      }
      if (c >= 0) {
        CM_ASSIGN_OR_RETURN(have_n, n.Next(&b));
      }
    }
    if (runs_on_) CloseRun();
    run_total_ = run_index_;
    run_index_ = 0;
    run_next_ = 0;
    if (!opts_.moves) {
      old_by_size_.clear();
      return Status::Ok();
    }
    // Only sizes an added file has can serve as identical bases.
    for (auto it = old_by_size_.begin(); it != old_by_size_.end();)
      it = added_sizes.count(it->first) ? std::next(it) : old_by_size_.erase(it);
    for (auto& [path, size] : removed) {
      std::string name = BaseName(path);
      // A removed file of an added file's size may be its identical base
      // (a rename): held back too.
      if (added_sizes.count(size) && size >= kMinMoveDelta) held_back_.insert(path);
      if (!added_names.count(name)) continue;
      held_back_.insert(path);
      move_bases_[name].emplace_back(path, size);
    }
    return Status::Ok();
  }

  // Runs (TreeDiffOptions::time_runs). The files and directories of the new
  // tree are numbered in walk order (symlinks are not: their mtimes are not
  // carried); the prepass groups consecutive ones of one mtime and keeps the
  // groups with enough mtime-only changes; the main walk then ignores mtime
  // differences inside them.
  struct TimeRun {
    std::string first, last;
    int64_t mtime_ns = 0;
    uint64_t count = 0, changed = 0;
    uint64_t begin = 0;  // index of its first entry
  };
  void NoteRunEntry(const WalkEntry& b, bool changed) {
    if (b.kind == Kind::kSymlink) return;
    const uint64_t i = run_index_++;
    if (open_run_.count > 0 && b.mtime_ns == open_run_.mtime_ns) {
      open_run_.last = b.path;
      ++open_run_.count;
      open_run_.changed += changed;
      return;
    }
    CloseRun();
    if (b.mtime_ns == 0) return;
    open_run_.first = open_run_.last = b.path;
    open_run_.mtime_ns = b.mtime_ns;
    open_run_.count = 1;
    open_run_.changed = changed;
    open_run_.begin = i;
  }
  void CloseRun() {
    if (open_run_.count > 0 && open_run_.changed >= kMinTimeRunChanges) runs_.push_back(std::move(open_run_));
    open_run_ = TimeRun{};
  }
  // Main walk: called for every new-tree entry before it is handled.
  void EnterRun(const WalkEntry& n) {
    in_run_ = false;
    if (!runs_on_ || n.kind == Kind::kSymlink) return;
    const uint64_t i = run_index_++;
    while (run_next_ < runs_.size() && runs_[run_next_].begin + runs_[run_next_].count <= i) ++run_next_;
    in_run_ = run_next_ < runs_.size() && runs_[run_next_].begin <= i && runs_[run_next_].mtime_ns == n.mtime_ns;
  }
  // Whether an mtime difference alone is a change for the current entry.
  bool TimesMatter() const { return opts_.times && !in_run_; }

  // A REMOVE of a directory stands for its whole subtree.
  Status Remove(const WalkEntry& o) {
    if (o.kind == Kind::kDir) old_.SkipChildren();
    if (o.kind == Kind::kFile && held_back_.count(o.path)) {
      deferred_removes_.push_back(Entry(Op::kRemove, o));
      return Status::Ok();
    }
    if (o.kind == Kind::kFile) gone_bases_.insert(o.path);
    return Emit(Entry(Op::kRemove, o), {});
  }

  // An added file that a removed file of the same name (the closest in
  // size) gives a delta of at most half its size is sent as that delta.
  Status TryMoveDelta(const MappedFile& nf, DeltaEntry* e, EntryDetails* d, SpillSink* stream, bool* used) {
    *used = false;
    auto it = move_bases_.find(BaseName(e->path));
    if (it == move_bases_.end() || nf.size() < kMinMoveDelta) return Status::Ok();
    const std::pair<std::string, uint64_t>* best = nullptr;
    for (const auto& cand : it->second) {
      auto dist = [&](uint64_t s) { return s > nf.size() ? s - nf.size() : nf.size() - s; };
      if (best == nullptr || dist(cand.second) < dist(best->second)) best = &cand;
    }
    MappedFile of;
    CM_RETURN_IF_ERROR(of.Open(old_.FullPath(best->first)));
    if (of.size() == 0) return Status::Ok();
    summary_.bytes_read += of.size();
    DeltaOptions dopts = opts_.delta;
    dopts.max_stream_bytes = std::min(dopts.max_stream_bytes, nf.size() / 2);
    InstructionWriter iw(stream);
    DeltaStats st;
    CM_RETURN_IF_ERROR(ComputeDelta(of.data(), of.size(), nf.data(), nf.size(), dopts, &iw, &st));
    if (st.exceeded || st.copied < nf.size() / 2) return Status::Ok();
    e->encoding = Encoding::kDelta;
    e->base_path = best->first;
    e->base_size = of.size();
    e->base_hash = HashBytes(of.data(), of.size());
    d->delta_bytes = st.stream_bytes;
    d->copied = st.copied;
    d->inserted = st.inserted;
    *used = true;
    return Status::Ok();
  }

  // An added file whose bytes an old file holds under another name (a
  // rename, or a copy of a file the table leaves alone up to here) is a
  // DELTA of one COPY against it: a reference, not the bytes. Bases are old
  // files of its size (the first kMaxSameSizeBases in walk order), compared
  // byte by byte; one the table already removed or changed is skipped.
  Status TryIdenticalBase(const MappedFile& nf, DeltaEntry* e, EntryDetails* d, SpillSink* stream, bool* used) {
    *used = false;
    auto it = old_by_size_.find(nf.size());
    if (it == old_by_size_.end()) return Status::Ok();
    for (const std::string& cand : it->second) {
      if (gone_bases_.count(cand)) continue;
      MappedFile of;
      CM_RETURN_IF_ERROR(of.Open(old_.FullPath(cand)));
      summary_.bytes_read += of.size();
      if (of.size() != nf.size() || std::memcmp(of.data(), nf.data(), nf.size()) != 0) continue;
      InstructionWriter iw(stream);
      CM_RETURN_IF_ERROR(iw.Copy(0, nf.size()));
      CM_RETURN_IF_ERROR(iw.Finish());
      e->encoding = Encoding::kDelta;
      e->base_path = cand;
      e->base_size = of.size();
      e->base_hash = e->hash;  // the same bytes
      d->delta_bytes = stream->size();
      d->copied = nf.size();
      d->inserted = 0;
      *used = true;
      return Status::Ok();
    }
    return Status::Ok();
  }

  Status Add(const WalkEntry& n) {
    DeltaEntry e = Entry(Op::kAdd, n);
    if (n.kind == Kind::kSymlink) e.link_target = n.link_target;
    const bool by_name = n.kind == Kind::kFile && move_bases_.count(BaseName(n.path));
    const bool by_size = n.kind == Kind::kFile && old_by_size_.count(n.size);
    if (!opts_.listing_only && (by_name || by_size)) {
      MappedFile nf;
      const std::string leaf = BaseName(n.path);
      CM_RETURN_IF_ERROR(nf.Open(new_.FullPath(n.path), new_.ParentFd(), &leaf));
      e.size = nf.size();
      e.hash = HashBytes(nf.data(), nf.size());
      summary_.bytes_read += nf.size();
      EntryDetails d;
      SpillSink stream;
      bool used = false;
      if (by_size) CM_RETURN_IF_ERROR(TryIdenticalBase(nf, &e, &d, &stream, &used));
      if (!used && by_name) CM_RETURN_IF_ERROR(TryMoveDelta(nf, &e, &d, &stream, &used));
      if (used) ++summary_.moved_files;
      return Emit(e, d, used ? &stream : nullptr);
    }
    if (n.kind == Kind::kFile && !opts_.listing_only) {
      std::string path = new_.FullPath(n.path);
      const int pfd = new_.ParentFd();
      UniqueFd fd(pfd >= 0 ? ::openat(pfd, BaseName(n.path).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
                           : ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) return ErrnoError(path, errno);
      struct stat st;
      if (::fstat(fd.get(), &st) != 0) return ErrnoError(path, errno);
      if (!S_ISREG(st.st_mode)) return Error(Code::kIo, path + ": changed during the walk (not a file)");
      auto h = HashToEnd(fd.get(), static_cast<uint64_t>(st.st_size), &hash_buf_);
      if (!h.ok()) return Status(h.status().code(), path + ": " + h.status().message());
      e.hash = *h;
      e.size = static_cast<uint64_t>(st.st_size);
      summary_.bytes_read += e.size;
    }
    return Emit(e, {});
  }

  Status CompareFiles(const WalkEntry& o, const WalkEntry& n) {
    bool meta = MetaDiffers(o, n, TimesMatter());
    if (!opts_.checksum && o.size == n.size && o.mtime_ns == n.mtime_ns) {
      return meta ? Emit(Entry(Op::kMeta, n), {}) : Status::Ok();
    }
    MappedFile nf, of;
    const std::string leaf = BaseName(n.path);  // o.path == n.path
    CM_RETURN_IF_ERROR(nf.Open(new_.FullPath(n.path), new_.ParentFd(), &leaf));
    CM_RETURN_IF_ERROR(of.Open(old_.FullPath(o.path), old_.ParentFd(), &leaf));
    summary_.bytes_read += nf.size() + of.size();
    if (nf.size() == of.size() && std::memcmp(nf.data(), of.data(), nf.size()) == 0) {
      // Same bytes after all: at most a metadata change.
      if (!meta) return Status::Ok();
      DeltaEntry e = Entry(Op::kMeta, n);
      e.size = nf.size();
      return Emit(e, {});
    }

    DeltaEntry e = Entry(Op::kModify, n);
    e.size = nf.size();
    e.encoding = Encoding::kWhole;
    gone_bases_.insert(n.path);  // other bytes from here on
    EntryDetails d;
    std::optional<AsyncHash> new_hash;
    if (!opts_.listing_only) new_hash.emplace(nf.data(), nf.size());
    SpillSink stream;
    bool use_delta = false;
    if (!opts_.listing_only && of.size() > 0 && nf.size() > 0) {
      AsyncHash old_hash(of.data(), of.size());
      DeltaOptions dopts = opts_.delta;
      dopts.max_stream_bytes = std::min(dopts.max_stream_bytes, nf.size() - 1);
      bool entropic = LooksHighEntropy(nf.data(), nf.size());
      if (entropic) dopts.give_up_without_copy = std::min(dopts.give_up_without_copy, kEntropyProbeBytes);
      InstructionWriter iw(&stream);
      DeltaStats st;
      CM_RETURN_IF_ERROR(ComputeDelta(of.data(), of.size(), nf.data(), nf.size(), dopts, &iw, &st));
      // A delta of random-looking data that copies little is not worth
      // depending on the base for. (1/64, not 1/8: linux-libc-dev's
      // changelog.Debian.gz of 1.3 MB copies 2.75% of its old version, 29 KB
      // that zstd --patch-from saves too.)
      use_delta = !st.exceeded && st.stream_bytes < nf.size() && !(entropic && st.copied < nf.size() / 64);
      SpillSink zstream;
      bool use_zstd = false;
      if (opts_.zstd_deltas && !entropic) CM_RETURN_IF_ERROR(TryZstdDelta(of, nf, use_delta, &stream, &zstream, &use_zstd));
      if (use_zstd) {
        use_delta = true;
        st.stream_bytes = zstream.size();
        st.copied = 0;
        st.inserted = 0;
      }
      if (use_delta) {
        e.encoding = Encoding::kDelta;
        e.base_size = of.size();
        e.base_hash = old_hash.Get();
        d.delta_bytes = st.stream_bytes;
        d.copied = st.copied;
        d.inserted = st.inserted;
      }
      if (new_hash) e.hash = new_hash->Get();
      return Emit(e, d, use_zstd ? &zstream : use_delta ? &stream : nullptr);
    }
    if (new_hash) e.hash = new_hash->Get();
    return Emit(e, d, use_delta ? &stream : nullptr);
  }

  // For a small file, zstd with the whole old version as its prefix (what
  // `zstd --patch-from` does) finds the short matches of rebuilt binaries
  // (shifted addresses) that COPY/INSERT leaves as literals. It is kept when
  // its frame is smaller than the instructions (or the file) compressed at
  // a fast level: an estimate of what cm-pack will store.
  Status TryZstdDelta(const MappedFile& of, const MappedFile& nf, bool have_delta, SpillSink* ours,
                      SpillSink* out, bool* used) {
    *used = false;
    if (of.size() > kMaxZstdBase || nf.size() > kMaxZstdBase) return Status::Ok();
    std::string mine;
    if (have_delta) {
      CM_RETURN_IF_ERROR(ours->ForEachChunk([&](const char* p, size_t n) {
        mine.append(p, n);
        return Status::Ok();
      }));
    } else {
      mine.assign(reinterpret_cast<const char*>(nf.data()), nf.size());
    }
    // Buffers are not zero-filled and the contexts are kept across files:
    // on trees of small changed files their set-up was a tenth of cm-delta.
    if (!est_cctx_) est_cctx_.reset(ZSTD_createCCtx());
    if (!delta_cctx_) delta_cctx_.reset(ZSTD_createCCtx());
    if (!est_cctx_ || !delta_cctx_) return Status::Ok();
    const size_t est_cap = ZSTD_compressBound(mine.size());
    auto est = std::make_unique_for_overwrite<char[]>(est_cap);
    size_t est_n = ZSTD_compressCCtx(est_cctx_.get(), est.get(), est_cap, mine.data(), mine.size(), 3);
    if (ZSTD_isError(est_n)) return Status::Ok();
    ZSTD_CCtx* c = delta_cctx_.get();
    ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel,
                           nf.size() <= kZstdDeltaSmallFile ? kZstdDeltaLevel : kZstdDeltaLevelLarge);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    // The window must reach back over the whole base (as --patch-from sets it).
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog,
                           std::max(10, static_cast<int>(std::bit_width(of.size() + nf.size()))));
    ZSTD_CCtx_refPrefix(c, of.data(), of.size());
    const size_t frame_cap = ZSTD_compressBound(nf.size());
    auto frame = std::make_unique_for_overwrite<char[]>(frame_cap);
    size_t fn = ZSTD_compress2(c, frame.get(), frame_cap, nf.data(), nf.size());
    if (ZSTD_isError(fn) || fn + 8 >= est_n) return Status::Ok();
    InstructionWriter iw(out);
    CM_RETURN_IF_ERROR(iw.Zstd(frame.get(), fn, nf.size()));
    CM_RETURN_IF_ERROR(iw.Finish());
    *used = true;
    return Status::Ok();
  }

  Status Emit(const DeltaEntry& e, const EntryDetails& d, SpillSink* stream = nullptr) {
    if (table_ != nullptr) {
      CM_RETURN_IF_ERROR(table_->AddEntry(e));
      if (stream != nullptr) {
        CM_RETURN_IF_ERROR(stream->ForEachChunk(
            [this](const char* p, size_t n) { return table_->AddDeltaBytes(p, n); }));
      }
    }
    ++summary_.entries;
    switch (e.op) {
      case Op::kAdd: ++summary_.added; break;
      case Op::kRemove: ++summary_.removed; break;
      case Op::kModify: ++summary_.modified; break;
      case Op::kMeta: ++summary_.meta; break;
      case Op::kTimes:
        ++summary_.time_runs;
        summary_.time_run_entries += e.size;
        break;
    }
    if (e.op == Op::kModify && e.kind == Kind::kFile) {
      if (e.encoding == Encoding::kDelta) {
        ++summary_.delta_files;
        summary_.delta_bytes += d.delta_bytes;
      } else {
        ++summary_.whole_files;
      }
    }
    if (obs_ != nullptr) return obs_->OnEntry(e, d);
    return Status::Ok();
  }

  const TreeDiffOptions& opts_;
  std::vector<uint8_t> hash_buf_;  // added files' hashing (HashToEnd)
  struct CCtxFree {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  std::unique_ptr<ZSTD_CCtx, CCtxFree> est_cctx_, delta_cctx_;  // TryZstdDelta's, kept across files
  DeltaTableWriter* table_;
  DiffObserver* obs_;
  PathFilter filter_;
  TreeWalker old_, new_;
  DiffSummary summary_;
  // Moves (Prepass): removed files by name, and those held back.
  std::unordered_map<std::string, std::vector<std::pair<std::string, uint64_t>>> move_bases_;
  std::unordered_set<std::string> held_back_;
  // Identical bases (TryIdenticalBase): old files by size (sizes of added
  // files only), and those the table removed or changed so far.
  std::unordered_map<uint64_t, std::vector<std::string>> old_by_size_;
  std::unordered_set<std::string> gone_bases_;
  std::vector<DeltaEntry> deferred_removes_;
  // Runs of equal mtimes (Prepass, EnterRun).
  bool runs_on_ = false;
  std::vector<TimeRun> runs_;
  TimeRun open_run_;
  uint64_t run_index_ = 0, run_total_ = 0;
  size_t run_next_ = 0;
  bool in_run_ = false;
};

}  // namespace

Result<DiffSummary> DiffTrees(const std::string& old_root, const std::string& new_root,
                              const TreeDiffOptions& opts, DeltaTableWriter* table,
                              DiffObserver* observer) {
  Differ d(old_root, new_root, opts, table, observer);
  return d.Run();
}

}  // namespace cm::delta
