#include "delta/manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>

#include "util/byte_io.h"
#include "util/file_util.h"
#include "util/strings.h"

namespace cm::delta {

namespace {

constexpr std::string_view kMagic = "cm-manifest 1";

void PutU32(Hasher* h, uint32_t v) {
  uint8_t b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  h->Update(b, 4);
}
void PutU64(Hasher* h, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
  h->Update(b, 8);
}
void PutStr(Hasher* h, std::string_view s) {
  PutU32(h, static_cast<uint32_t>(s.size()));
  h->Update(s);
}

bool NeedsEscape(unsigned char c) { return c <= 0x20 || c == '%' || c == 0x7f; }

std::string Escape(std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (NeedsEscape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool Unescape(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    uint8_t b;
    if (!FromHex(s.substr(i + 1, 2), &b, 1)) return false;
    out->push_back(static_cast<char>(b));
    i += 2;
  }
  return true;
}

template <typename T>
bool ParseNum(std::string_view s, T* v, int base = 10) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

// The content hash of `name` in directory `dir` (the walk's open parent; -1:
// `full` itself). A
// name that is no longer a regular file is an error: the tree changed during
// the walk.
Result<Hash256> HashEntry(int dir, const std::string& name, const std::string& full, std::vector<uint8_t>* buf) {
  UniqueFd fd(::openat(dir >= 0 ? dir : AT_FDCWD, dir >= 0 ? name.c_str() : full.c_str(),
                       O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return ErrnoError(full, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(full, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kIo, full + ": changed during the walk (not a file)");
  auto h = HashToEnd(fd.get(), static_cast<uint64_t>(st.st_size), buf);
  if (!h.ok()) return Status(h.status().code(), full + ": " + h.status().message());
  return h;
}

char KindChar(Kind k) { return k == Kind::kDir ? 'd' : k == Kind::kSymlink ? 'l' : 'f'; }

}  // namespace

Result<Hash256> HashToEnd(int fd, uint64_t size_hint, std::vector<uint8_t>* buf) {
  // Small files in one read (plus the one that sees the end); the buffer is
  // reused across files: a fresh zeroed 1 MiB one per file (HashFile) cost
  // more than the hashing on trees of small files.
  const size_t want = static_cast<size_t>(std::min<uint64_t>(size_hint + 1, 1u << 20));
  if (buf->size() < want) buf->resize(std::max<size_t>(want, 64u << 10));
  Hasher h;
  uint64_t off = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf->data(), buf->size(), static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read", errno);
    if (n == 0) break;
    h.Update(buf->data(), static_cast<size_t>(n));
    off += static_cast<uint64_t>(n);
  }
  return h.Finish();
}

const ManifestEntry* Manifest::Find(std::string_view path) const {
  std::string p(path);
  auto it = std::lower_bound(entries.begin(), entries.end(), p,
                             [](const ManifestEntry& e, const std::string& x) { return ComparePaths(e.path, x) < 0; });
  if (it == entries.end() || it->path != p) return nullptr;
  return &*it;
}

uint64_t Manifest::FileBytes() const {
  uint64_t n = 0;
  for (const auto& e : entries)
    if (e.kind == Kind::kFile) n += e.size;
  return n;
}

Hash256 ManifestHash(const Manifest& m) {
  Hasher h;
  h.Update(std::string_view("cm-manifest-hash 1", 19));
  PutU64(&h, m.entries.size());
  for (const auto& e : m.entries) {
    uint8_t k = static_cast<uint8_t>(e.kind);
    h.Update(&k, 1);
    PutStr(&h, e.path);
    PutU32(&h, e.kind == Kind::kSymlink ? 0 : e.mode);
    if (e.kind == Kind::kFile) {
      PutU64(&h, e.size);
      h.Update(e.hash.data(), e.hash.size());
    } else if (e.kind == Kind::kSymlink) {
      PutStr(&h, e.link_target);
    }
  }
  return h.Finish();
}

std::string ShortHash(const Hash256& h) { return ToHex(h.data(), 8); }

Result<Manifest> BuildManifest(const std::string& root, const ManifestOptions& opt, uint64_t* hashed_bytes) {
  std::string special;
  TreeWalker walker(root, opt.filter, [&](const std::string& p, const std::string& what) {
    if (special.empty()) special = p + ": " + what;
  });
  if (Status s = walker.Start(opt.missing_ok); !s.ok()) return s;
  Manifest m;
  WalkEntry w;
  std::vector<uint8_t> buf;
  for (;;) {
    auto more = walker.Next(&w);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (!special.empty()) return Error(Code::kFailure, walker.FullPath(special) + " (no manifest for special files)");
    ManifestEntry e;
    e.path = w.path;
    e.kind = w.kind;
    e.mode = w.kind == Kind::kSymlink ? 0 : w.mode;
    e.ino = w.ino;
    e.mtime_ns = w.mtime_ns;
    if (w.kind == Kind::kFile) {
      e.size = w.size;
      const ManifestEntry* c = opt.cache ? opt.cache->Find(w.path) : nullptr;
      if (c && c->kind == Kind::kFile && c->ino == w.ino && c->size == w.size && c->mtime_ns == w.mtime_ns &&
          c->ino != 0) {
        e.hash = c->hash;
      } else {
        const size_t slash = w.path.find_last_of('/');
        auto h = HashEntry(walker.ParentFd(), slash == std::string::npos ? w.path : w.path.substr(slash + 1),
                           walker.FullPath(w.path), &buf);
        if (!h.ok()) return h.status();
        e.hash = *h;
        if (hashed_bytes) *hashed_bytes += w.size;
      }
    } else if (w.kind == Kind::kSymlink) {
      e.link_target = w.link_target;
    }
    m.entries.push_back(std::move(e));
  }
  if (!special.empty()) return Error(Code::kFailure, walker.FullPath(special) + " (no manifest for special files)");
  return m;
}

std::string EncodeManifest(const Manifest& m) {
  std::string out(kMagic);
  out += '\n';
  for (const auto& e : m.entries) {
    out += KindChar(e.kind);
    out += ' ';
    char buf[16];
    auto r = std::to_chars(buf, buf + sizeof buf, e.mode, 8);
    out.append(buf, r.ptr);
    out += ' ' + std::to_string(e.size) + ' ';
    out += e.kind == Kind::kFile ? ToHex(e.hash) : "-";
    out += ' ' + std::to_string(e.ino) + ' ' + std::to_string(e.mtime_ns) + ' ' + Escape(e.path);
    if (e.kind == Kind::kSymlink) out += ' ' + Escape(e.link_target);
    out += '\n';
  }
  return out;
}

Result<Manifest> DecodeManifest(std::string_view text) {
  auto bad = [](size_t line, const std::string& what) {
    return Error(Code::kCorrupt, "manifest line " + std::to_string(line) + ": " + what);
  };
  size_t pos = text.find('\n');
  if (pos == std::string_view::npos || text.substr(0, pos) != kMagic)
    return Error(Code::kCorrupt, "not a manifest (no \"cm-manifest 1\" line)");
  Manifest m;
  size_t line_no = 1;
  pos += 1;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) return bad(line_no + 1, "no newline at the end");
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    std::vector<std::string_view> f;
    size_t p = 0;
    while (p <= line.size()) {
      size_t q = line.find(' ', p);
      if (q == std::string_view::npos) q = line.size();
      f.push_back(line.substr(p, q - p));
      p = q + 1;
    }
    if (f.size() != 7 && f.size() != 8) return bad(line_no, "wrong number of fields");
    ManifestEntry e;
    if (f[0] == "f") e.kind = Kind::kFile;
    else if (f[0] == "d") e.kind = Kind::kDir;
    else if (f[0] == "l") e.kind = Kind::kSymlink;
    else return bad(line_no, "unknown kind");
    if (!ParseNum(f[1], &e.mode, 8) || e.mode > 07777) return bad(line_no, "bad mode");
    if (!ParseNum(f[2], &e.size)) return bad(line_no, "bad size");
    if (e.kind == Kind::kFile) {
      if (f[3].size() != 64 || !FromHex(f[3], e.hash.data(), 32)) return bad(line_no, "bad hash");
    } else if (f[3] != "-") {
      return bad(line_no, "hash on a non-file");
    }
    if (!ParseNum(f[4], &e.ino) || !ParseNum(f[5], &e.mtime_ns)) return bad(line_no, "bad stat fields");
    if (!Unescape(f[6], &e.path) || e.path.empty()) return bad(line_no, "bad path");
    if ((e.kind == Kind::kSymlink) != (f.size() == 8)) return bad(line_no, "link target on a non-link");
    if (f.size() == 8 && (!Unescape(f[7], &e.link_target) || e.link_target.empty()))
      return bad(line_no, "bad link target");
    if (!m.entries.empty() && ComparePaths(m.entries.back().path, e.path) >= 0)
      return bad(line_no, "entries out of order");
    m.entries.push_back(std::move(e));
  }
  return m;
}

Status SaveManifest(const std::string& path, const Manifest& m) {
  return WriteFileAtomic(path, EncodeManifest(m), 0644);
}

Result<Manifest> LoadManifest(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  auto m = DecodeManifest(*text);
  if (!m.ok()) return Error(m.status().code(), path + ": " + m.status().message());
  return m;
}

ManifestDiff DiffManifests(const Manifest& want, const Manifest& have) {
  ManifestDiff d;
  size_t i = 0, j = 0;
  while (i < want.entries.size() || j < have.entries.size()) {
    if (j == have.entries.size()) {
      d.missing.push_back(want.entries[i++].path);
    } else if (i == want.entries.size()) {
      d.extra.push_back(have.entries[j++].path);
    } else {
      int c = ComparePaths(want.entries[i].path, have.entries[j].path);
      if (c < 0) {
        d.missing.push_back(want.entries[i++].path);
      } else if (c > 0) {
        d.extra.push_back(have.entries[j++].path);
      } else {
        if (!want.entries[i].SameContent(have.entries[j])) d.changed.push_back(want.entries[i].path);
        ++i;
        ++j;
      }
    }
  }
  return d;
}

}  // namespace cm::delta
