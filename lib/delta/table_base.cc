#include "delta/table_base.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>

#include "util/file_util.h"

namespace cm::delta {
namespace {

// "s<digits>-<job>" -> serial; 0 when the name is not a release id.
uint64_t SerialOf(const std::string& name) {
  if (name.size() < 3 || name[0] != 's') return 0;
  uint64_t v = 0;
  size_t i = 1;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
    if (v > (UINT64_MAX - 9) / 10) return 0;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  if (i < 13 || i >= name.size() - 1 || name[i] != '-') return 0;
  return v;
}

std::string Dirname(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
}
std::string Basename(const std::string& p) {
  auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool Under(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

struct PathLess {
  bool operator()(const std::string& a, const std::string& b) const { return ComparePaths(a, b) < 0; }
};

// Forwards to another observer and keeps every entry (without instruction bytes).
class Collector : public DiffObserver {
 public:
  explicit Collector(DiffObserver* next) : next_(next) {}
  Status OnEntry(const DeltaEntry& e, const EntryDetails& d) override {
    entries.push_back(e);
    return next_ ? next_->OnEntry(e, d) : Status::Ok();
  }
  void OnWarning(const std::string& path, const std::string& what) override {
    if (next_) next_->OnWarning(path, what);
  }
  void OnProgress(const DiffSummary& s) override {
    if (next_) next_->OnProgress(s);
  }
  std::vector<DeltaEntry> entries;

 private:
  DiffObserver* next_;
};

class BufferedSink : public ByteSink {
 public:
  explicit BufferedSink(int fd) : fd_(fd) {}
  Status Write(const void* p, size_t n) override {
    buf_.append(static_cast<const char*>(p), n);
    return buf_.size() >= (1 << 20) ? Flush() : Status::Ok();
  }
  Status Flush() {
    Status st = WriteFull(fd_, buf_.data(), buf_.size());
    buf_.clear();
    return st;
  }

 private:
  int fd_;
  std::string buf_;
};

}  // namespace

Result<OldTreeBase> DescribeOldTree(const std::string& old_root, bool missing_ok) {
  OldTreeBase out;
  std::unique_ptr<Manifest> cache;
  char* real = ::realpath(old_root.c_str(), nullptr);
  if (real) {
    const std::string rp(real);
    std::free(real);
    const std::string name = Basename(rp), releases = Dirname(rp);
    const std::string root = Dirname(releases);
    struct stat st;
    if (Basename(releases) == "releases" && SerialOf(name) != 0 &&
        ::stat((root + "/.cm").c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      out.base.release = name;
      out.base.serial = SerialOf(name);
      auto m = LoadManifest(root + "/.cm/manifests/" + name + ".mf");
      if (m.ok()) cache = std::make_unique<Manifest>(std::move(m).value());
    }
  }
  ManifestOptions mo;
  mo.cache = cache.get();
  mo.missing_ok = missing_ok;
  CM_ASSIGN_OR_RETURN(out.manifest, BuildManifest(old_root, mo));
  out.base.manifest = ManifestHash(out.manifest);
  return out;
}

Result<Manifest> ApplyEntries(const Manifest& base, const std::vector<DeltaEntry>& entries) {
  // path -> its entry afterwards (nullopt: removed); removed directories
  // take their subtrees unless re-added.
  std::map<std::string, std::optional<ManifestEntry>, PathLess> now;
  std::set<std::string> removed_dirs;
  auto lookup = [&](const std::string& p) -> const ManifestEntry* {
    auto it = now.find(p);
    if (it != now.end()) return it->second ? &*it->second : nullptr;
    for (const auto& d : removed_dirs)
      if (Under(p, d) || p == d) return nullptr;
    return base.Find(p);
  };
  for (const DeltaEntry& e : entries) {
    if (e.op == Op::kTimes) continue;  // mtimes are not content
    if (e.op == Op::kRemove) {
      if (e.kind == Kind::kDir) {
        // Whatever was added under it before is gone too.
        for (auto it = now.begin(); it != now.end();) it = Under(it->first, e.path) ? now.erase(it) : std::next(it);
        removed_dirs.insert(e.path);
      }
      now[e.path] = std::nullopt;
      continue;
    }
    ManifestEntry m;
    if (e.op == Op::kMeta) {
      const ManifestEntry* old = lookup(e.path);
      if (!old || old->kind != e.kind) return Error(Code::kCorrupt, e.path + ": META of a path the base lacks");
      m = *old;
    } else if (e.op == Op::kModify) {
      const ManifestEntry* old = lookup(e.path);
      if (!old || old->kind != e.kind) return Error(Code::kCorrupt, e.path + ": MODIFY of a path the base lacks");
    }
    m.path = e.path;
    m.kind = e.kind;
    m.mode = e.kind == Kind::kSymlink ? 0 : e.mode & 07777;
    m.ino = 0;
    m.mtime_ns = 0;
    if (e.kind == Kind::kFile) {
      m.size = e.size;
      if (e.op != Op::kMeta) m.hash = e.hash;
    } else {
      m.size = 0;
      m.hash = {};
    }
    if (e.kind == Kind::kSymlink && e.op != Op::kMeta) m.link_target = e.link_target;
    now[e.path] = std::move(m);
  }
  Manifest out;
  out.entries.reserve(base.entries.size() + now.size());
  for (const auto& b : base.entries) {
    if (now.count(b.path)) continue;
    bool gone = false;
    for (const auto& d : removed_dirs)
      if (Under(b.path, d)) gone = true;
    if (!gone) out.entries.push_back(b);
  }
  for (auto& [p, m] : now)
    if (m) out.entries.push_back(std::move(*m));
  std::sort(out.entries.begin(), out.entries.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return ComparePaths(a.path, b.path) < 0; });
  return out;
}

Result<DiffSummary> DiffTreesWithBase(const std::string& old_root, const std::string& new_root,
                                      const TreeDiffOptions& opts, ByteSink* sink, DiffObserver* observer,
                                      TableBase* base_out) {
  // Before the diff, on this thread: built on a second thread while the diff
  // ran, it saved 0.01-0.07 s of wall time on the Debian release pairs but
  // cost 10-20% more CPU (two threads on this machine's two vCPUs slow each
  // other), which a loaded machine pays in wall time (docs/BENCHMARKS.md,
  // issue 14, session 9).
  auto old = DescribeOldTree(old_root, opts.old_may_be_missing);
  if (!old.ok() && old.status().code() != Code::kFailure) return old.status();
  if (!old.ok() && observer) observer->OnWarning(old_root, old.status().message() + "; the delta names no base");
  const char* t = std::getenv("TMPDIR");
  const std::string tmp = t && *t ? t : "/tmp";
  UniqueFd fd(::open(tmp.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError(tmp + " (temporary delta table)", errno);
  BufferedSink spool(fd.get());
  DeltaTableWriter w(&spool);
  Collector collect(observer);
  CM_ASSIGN_OR_RETURN(DiffSummary s, DiffTrees(old_root, new_root, opts, &w, &collect));
  CM_RETURN_IF_ERROR(spool.Flush());
  TableBase base;
  if (old.ok()) {
    base = old->base;
    auto result = ApplyEntries(old->manifest, collect.entries);
    if (result.ok()) base.result_manifest = ManifestHash(*result);
    else if (observer) observer->OnWarning(old_root, result.status().message() + "; no result manifest");
  }
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0) return ErrnoError(tmp + " (temporary delta table)", errno);
  FileRangeSource in(fd.get(), 0, static_cast<uint64_t>(size));
  CM_RETURN_IF_ERROR(RewriteWithBase(&in, base, sink));
  if (base_out) *base_out = base;
  return s;
}

Status RewriteWithBase(ByteSource* in, const TableBase& base, ByteSink* out) {
  DeltaTableReader r(in);
  CM_RETURN_IF_ERROR(r.Begin());
  DeltaTableWriter w(out);
  w.SetBase(base);
  CM_RETURN_IF_ERROR(w.Begin(r.flags()));
  DeltaEntry e;
  std::vector<char> buf(1 << 16);
  for (;;) {
    CM_ASSIGN_OR_RETURN(bool more, r.Next(&e));
    if (!more) break;
    CM_RETURN_IF_ERROR(w.AddEntry(e));
    for (;;) {
      CM_ASSIGN_OR_RETURN(size_t n, r.ReadDeltaBytes(buf.data(), buf.size()));
      if (n == 0) break;
      CM_RETURN_IF_ERROR(w.AddDeltaBytes(buf.data(), n));
    }
  }
  return w.End();
}

}  // namespace cm::delta
