#include "support/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "util/file_util.h"
#include "util/hash.h"

namespace cm::test {
namespace {
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "test_util: %s: %s\n", what.c_str(), std::strerror(errno));
  std::abort();
}
}  // namespace

TempDir::TempDir() {
  const char* t = std::getenv("TMPDIR");
  std::string tmpl = std::string(t && *t ? t : "/tmp") + "/cm-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!::mkdtemp(buf.data())) Die("mkdtemp");
  path_ = buf.data();
}

TempDir::~TempDir() { RemoveTree(path_); }

void MakeDirs(const std::string& path, mode_t mode) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) Die("mkdir " + cur);
  }
}

void WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  MakeDirs(DirName(path));
  ::unlink(path.c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0) Die("open " + path);
  if (!WriteFull(fd, content.data(), content.size()).ok()) Die("write " + path);
  ::fchmod(fd, mode);
  ::close(fd);
}

std::string ReadFile(const std::string& path) {
  auto r = ReadFileToString(path);
  if (!r.ok()) Die("read " + path);
  return *r;
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    ::chmod(path.c_str(), 0700);
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
        RemoveTree(path + "/" + e->d_name);
      }
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  } else {
    ::unlink(path.c_str());
  }
}

namespace {
void Walk(const std::string& root, const std::string& rel, const ManifestOptions& o,
          std::vector<std::string>* lines) {
  std::string full = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(full.c_str());
  if (!d) Die("opendir " + full);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    if (!std::strcmp(e->d_name, ".") || !std::strcmp(e->d_name, "..")) continue;
    names.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    std::string r = rel.empty() ? n : rel + "/" + n;
    std::string p = root + "/" + r;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) Die("lstat " + p);
    char buf[128];
    std::snprintf(buf, sizeof buf, " %04o", static_cast<unsigned>(st.st_mode & 07777));
    std::string line = r;
    std::string owner = o.owners ? " " + std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) : "";
    if (S_ISDIR(st.st_mode)) {
      line += " dir" + std::string(buf) + owner;
      if (o.dir_mtimes) line += " m" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
      lines->push_back(line);
      Walk(root, r, o, lines);
    } else if (S_ISLNK(st.st_mode)) {
      std::vector<char> t(4096);
      ssize_t k = ::readlink(p.c_str(), t.data(), t.size());
      if (k < 0) Die("readlink " + p);
      line += " link -> " + std::string(t.data(), static_cast<size_t>(k)) + owner;
      lines->push_back(line);
    } else if (S_ISREG(st.st_mode)) {
      auto h = HashPath(p);
      if (!h.ok()) Die("hash " + p);
      line += " file" + std::string(buf) + owner + " " + std::to_string(st.st_size) + " " + ToHex(*h).substr(0, 16);
      if (o.mtimes) line += " m" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
      lines->push_back(line);
    } else {
      lines->push_back(line + " special");
    }
  }
}
}  // namespace

std::string Manifest(const std::string& root, const ManifestOptions& opts) {
  std::vector<std::string> lines;
  Walk(root, "", opts, &lines);
  std::string out;
  for (auto& l : lines) out += l + "\n";
  return out;
}

int Run(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) Die("popen");
  std::string o;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) o.append(buf, n);
  int st = ::pclose(p);
  if (out) *out = o;
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

std::string BinDir() {
  const char* b = std::getenv("CM_BIN");
  return b ? b : "";
}

}  // namespace cm::test
