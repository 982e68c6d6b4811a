#include "apply/layout.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <vector>

namespace cm::apply {

Layout::Layout(std::string root_dir) : root(std::move(root_dir)) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  current = root + "/current";
  current_tmp = root + "/.current.tmp";
  releases = root + "/releases";
  meta = root + "/.cm";
  lock = meta + "/lock";
  state = meta + "/state";
  journal = meta + "/journal";
  stage = meta + "/stage";
  reports = meta + "/reports";
  trash = meta + "/trash";
  manifests = meta + "/manifests";
}

std::string SafeName(std::string_view job) {
  std::string out;
  for (char c : job) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    out += ok ? c : '_';
  }
  if (out.empty() || out[0] == '.') out.insert(out.begin(), '_');
  return out;
}

std::string ReleaseId(uint64_t serial, std::string_view job) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "s%012" PRIu64 "-", serial);
  return buf + SafeName(job);
}

std::string StageName(std::string_view job, uint32_t part) { return SafeName(job) + ".p" + std::to_string(part); }

std::string ReleaseJob(std::string_view id) {
  // "s<serial, at least 12 digits>-<job>": serials from the clock have 16.
  if (id.size() < 15 || id[0] != 's') return "";
  size_t dash = id.find('-');
  if (dash == std::string_view::npos || dash < 13) return "";
  for (size_t i = 1; i < dash; ++i)
    if (id[i] < '0' || id[i] > '9') return "";
  return std::string(id.substr(dash + 1));
}

uint64_t ReleaseSerial(std::string_view id) {
  if (ReleaseJob(id).empty()) return 0;
  uint64_t v = 0;
  for (size_t i = 1; i < id.size() && id[i] != '-'; ++i) {
    if (v > (UINT64_MAX - 9) / 10) return 0;
    v = v * 10 + static_cast<uint64_t>(id[i] - '0');
  }
  return v;
}

Status CheckPrivate(const std::string& path, bool dir) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT && !dir) return Status::Ok();
    return ErrnoError(path, errno);
  }
  auto refuse = [&](const std::string& why) {
    return Error(Code::kUnsafePath, path + ": " + why + "; refusing a content root whose state another user could change");
  };
  if (S_ISLNK(st.st_mode)) return refuse("is a symlink");
  if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
    return refuse(dir ? "is not a directory" : "is not a regular file");
  if (st.st_uid != ::geteuid())
    return refuse("is owned by uid " + std::to_string(st.st_uid) + ", not by the running user (uid " +
                  std::to_string(::geteuid()) + ")");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(std::string("is group or world writable (mode ") + mode + ")");
  }
  // Readable by others is not unsafe, but state is nobody else's business.
  const mode_t want = dir ? 0700 : 0600;
  if ((st.st_mode & 0777 & ~want) != 0 && ::chmod(path.c_str(), st.st_mode & want) != 0) return ErrnoError(path, errno);
  return Status::Ok();
}

Status EnsureLayout(const Layout& l) {
  struct stat st;
  if (::stat(l.root.c_str(), &st) != 0) return ErrnoError(l.root, errno);
  if (!S_ISDIR(st.st_mode)) return Error(Code::kUsage, l.root + ": not a directory");
  for (const std::string* d : {&l.meta, &l.stage, &l.reports, &l.trash, &l.manifests, &l.releases}) {
    if (::mkdir(d->c_str(), d == &l.releases ? 0755 : 0700) != 0 && errno != EEXIST) return ErrnoError(*d, errno);
    // .cm first: nothing in it is looked at before it is known to be ours.
    if (d != &l.releases) CM_RETURN_IF_ERROR(CheckPrivate(*d, /*dir=*/true));
  }
  for (const std::string* f : {&l.state, &l.journal, &l.lock}) CM_RETURN_IF_ERROR(CheckPrivate(*f, /*dir=*/false));
  return Status::Ok();
}

Result<std::string> ReadCurrent(const Layout& l) {
  std::vector<char> buf(4096);
  ssize_t n = ::readlink(l.current.c_str(), buf.data(), buf.size() - 1);
  if (n < 0) {
    if (errno == ENOENT) return std::string();
    if (errno == EINVAL) return Error(Code::kUsage, l.current + ": exists and is not a symlink (not a cm-apply content root)");
    return ErrnoError(l.current, errno);
  }
  std::string target(buf.data(), static_cast<size_t>(n));
  const std::string prefix = "releases/";
  if (target.rfind(prefix, 0) != 0 || target.size() == prefix.size() ||
      target.find('/', prefix.size()) != std::string::npos)
    return Error(Code::kUsage, l.current + ": points outside releases/ (" + target + ")");
  return target.substr(prefix.size());
}

}  // namespace cm::apply
