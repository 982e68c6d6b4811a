#include "apply/dir_meta.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "apply/fs_ops.h"
#include "apply/safe_path.h"

namespace cm::apply {

std::string EncodeLogPath(const std::string& path) {
  if (path.empty()) return ".";
  if (path == ".") return "%2E";  // keep "." for the root only
  std::string out;
  for (unsigned char c : path) {
    if (c <= 0x20 || c == '%' || c >= 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool DecodeLogPath(const std::string& enc, std::string* path) {
  path->clear();
  if (enc == ".") return true;
  for (size_t i = 0; i < enc.size(); ++i) {
    if (enc[i] != '%') {
      *path += enc[i];
      continue;
    }
    uint8_t b;
    if (i + 2 >= enc.size()) return false;
    if (!FromHex(std::string_view(enc).substr(i + 1, 2), &b, 1)) return false;
    *path += static_cast<char>(b);
    i += 2;
  }
  return !path->empty();
}

Status DirMetaLog::Open(const std::string& path) {
  path_ = path;
  fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd_) return ErrnoError(path, errno);
  return Status::Ok();
}

Status DirMetaLog::Append(const std::string& line) {
  // One write per record: O_APPEND keeps records whole; a crash can at most
  // cut the last one, and a stage interrupted mid-part is discarded anyway.
  Status st = WriteFull(fd_.get(), line.data(), line.size());
  if (!st.ok()) return Status(st.code(), path_ + ": " + st.message());
  return st;
}

Status DirMetaLog::Set(const std::string& dir, const pack::Meta& m) {
  char buf[128];
  std::snprintf(buf, sizeof buf, " %o %" PRId64 " %d %u %u\n", m.mode & 07777, m.mtime_ns, m.has_owner ? 1 : 0,
                m.uid, m.gid);
  return Append("M " + EncodeLogPath(dir) + buf);
}

Status DirMetaLog::Renamed(const std::string& from, const std::string& to) {
  return Append("R " + EncodeLogPath(from) + " " + EncodeLogPath(to) + "\n");
}

Status DirMetaLog::Removed(const std::string& dir) { return Append("D " + EncodeLogPath(dir) + "\n"); }

namespace {
bool UnderOrAt(const std::string& key, const std::string& dir) {
  return key == dir || (key.size() > dir.size() && key.compare(0, dir.size(), dir) == 0 && key[dir.size()] == '/');
}
void EraseSubtree(DirMetaMap* m, const std::string& dir) {
  for (auto it = m->begin(); it != m->end();) it = UnderOrAt(it->first, dir) ? m->erase(it) : std::next(it);
}
}  // namespace

Result<DirMetaMap> ReplayDirMetaText(const std::string& text) {
  DirMetaMap m;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::istringstream ls(line);
    std::string kind, a, b;
    ls >> kind >> a;
    std::string pa, pb;
    auto bad = [&] { return Error(Code::kCorrupt, "dirmeta line " + std::to_string(lineno) + ": malformed"); };
    if (!DecodeLogPath(a, &pa)) return bad();
    if (kind == "M") {
      pack::Meta meta;
      std::string mode;
      int has_owner = 0;
      ls >> mode >> meta.mtime_ns >> has_owner >> meta.uid >> meta.gid;
      if (!ls || mode.empty()) return bad();
      char* end = nullptr;
      unsigned long bits = std::strtoul(mode.c_str(), &end, 8);
      if (*end != '\0' || bits > 07777) return bad();
      meta.mode = static_cast<uint32_t>(bits);
      meta.has_owner = has_owner != 0;
      m[pa] = meta;
    } else if (kind == "R") {
      ls >> b;
      if (!ls || !DecodeLogPath(b, &pb) || pa.empty() || pb.empty()) return bad();
      EraseSubtree(&m, pb);
      DirMetaMap moved;
      for (auto it = m.begin(); it != m.end();) {
        if (UnderOrAt(it->first, pa)) {
          moved[pb + it->first.substr(pa.size())] = it->second;
          it = m.erase(it);
        } else {
          ++it;
        }
      }
      m.insert(moved.begin(), moved.end());
    } else if (kind == "D") {
      if (pa.empty()) return bad();
      EraseSubtree(&m, pa);
    } else {
      return bad();
    }
  }
  return m;
}

Result<DirMetaMap> ReplayDirMeta(const std::string& log_path) {
  auto text = ReadFileToString(log_path);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) return DirMetaMap{};
    return text.status();
  }
  auto m = ReplayDirMetaText(*text);
  if (!m.ok()) return Status(m.status().code(), log_path + ": " + m.status().message());
  return m;
}

namespace {
// Whether an entry already carries `m` (what ApplyMetaFd would set).
bool HasMeta(const struct stat& st, const pack::Meta& m) {
  if ((st.st_mode & 07777) != (m.mode & 07777)) return false;
  if (m.has_owner && RunningAsRoot() && (st.st_uid != m.uid || st.st_gid != m.gid)) return false;
  if (m.mtime_ns != 0 &&
      static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec != m.mtime_ns)
    return false;
  return true;
}
}  // namespace

Status ApplyDirMeta(int tree_fd, const DirMetaMap& dirs, bool include_root, bool fsync_each) {
  std::vector<const DirMetaMap::value_type*> order;
  for (const auto& e : dirs)
    if (include_root || !e.first.empty()) order.push_back(&e);
  auto depth = [](const std::string& p) { return p.empty() ? 0 : 1 + std::count(p.begin(), p.end(), '/'); };
  std::stable_sort(order.begin(), order.end(),
                   [&](auto* x, auto* y) { return depth(x->first) > depth(y->first); });
  ParentWalker parents(tree_fd);
  for (const auto* e : order) {
    if (e->first.empty()) {
      CM_RETURN_IF_ERROR(ApplyMetaFd(tree_fd, e->second, "."));
      if (fsync_each && ::fsync(tree_fd) != 0) return ErrnoError(".", errno);
      continue;
    }
    // Siblings come one after the other (deepest first, then path order):
    // their parent stays open (ParentWalker) instead of being resolved from
    // the root for each.
    std::string leaf;
    auto parent_fd = parents.Parent(e->first, &leaf);
    if (!parent_fd.ok()) {
      // The directory went away with a removed or renamed parent: nothing to do.
      if (parent_fd.status().code() == Code::kNotFound || parent_fd.status().code() == Code::kBaseMismatch) continue;
      return parent_fd.status();
    }
    const int pdir = *parent_fd;  // borrowed from `parents`
    auto st = LstatAt(pdir, leaf);
    if (!st.ok()) {
      if (st.status().code() == Code::kNotFound) continue;
      return st.status();
    }
    if (!S_ISDIR(st->st_mode)) continue;
    if (HasMeta(*st, e->second)) continue;  // staged with it already (durable since the stage's syncfs)
    UniqueFd fd(::openat(pdir, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return ErrnoError(e->first, errno);
    CM_RETURN_IF_ERROR(ApplyMetaFd(fd.get(), e->second, e->first));
    if (fsync_each && ::fsync(fd.get()) != 0) return ErrnoError(e->first, errno);
  }
  return Status::Ok();
}

}  // namespace cm::apply
