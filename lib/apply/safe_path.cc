#include "apply/safe_path.h"

#include "util/path_util.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

namespace cm::apply {

Status ValidateRelPath(std::string_view path) {
  const char* why = ContentPathProblem(path);
  if (!why) return Status::Ok();
  std::string shown(path);
  for (char& c : shown)
    if (c == '\0') c = '?';
  return Error(Code::kUnsafePath, shown + ": unsafe path (" + why + ")");
}

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size() && !path.empty()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      out.emplace_back(path.substr(start));
      break;
    }
    out.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

namespace {
// Classifies why openat(O_NOFOLLOW|O_DIRECTORY) of `name` failed.
Status WalkError(int dir_fd, const std::string& so_far, const std::string& name, int err) {
  if (err == ENOENT) return Error(Code::kNotFound, so_far + ": no such directory");
  if (err == ELOOP || err == ENOTDIR) {
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISLNK(st.st_mode)) return Error(Code::kUnsafePath, so_far + ": path goes through a symlink");
      if (S_ISREG(st.st_mode)) return Error(Code::kBaseMismatch, so_far + ": not a directory");
    }
    return Error(Code::kUnsafePath, so_far + ": not a directory (special file)");
  }
  return ErrnoError(so_far, err);
}
}  // namespace

Result<UniqueFd> OpenDirBeneath(int dir_fd, std::string_view path) {
  UniqueFd cur(::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return ErrnoError(".", errno);
  std::string so_far;
  for (const std::string& comp : SplitPath(path)) {
    so_far += so_far.empty() ? comp : "/" + comp;
    UniqueFd next(::openat(cur.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return WalkError(cur.get(), so_far, comp, errno);
    cur = std::move(next);
  }
  return cur;
}

Result<ParentRef> OpenParentBeneath(int dir_fd, std::string_view path) {
  CM_RETURN_IF_ERROR(ValidateRelPath(path));
  size_t slash = path.rfind('/');
  std::string_view parent = slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
  ParentRef ref;
  ref.leaf = std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
  auto dir = OpenDirBeneath(dir_fd, parent);
  if (!dir.ok()) return dir.status();
  ref.dir = std::move(dir).value();
  return ref;
}

namespace {
// comps[begin, end) joined with '/'.
std::string JoinComps(const std::vector<std::string>& comps, size_t begin, size_t end) {
  std::string out;
  for (size_t j = begin; j < end; ++j) out += (j > begin ? "/" : "") + comps[j];
  return out;
}
}  // namespace

Result<int> ParentWalker::Parent(std::string_view path, std::string* leaf) {
  CM_RETURN_IF_ERROR(ValidateRelPath(path));
  std::vector<std::string> comps = SplitPath(path);
  *leaf = std::move(comps.back());
  comps.pop_back();
  deep_.reset();
  size_t keep = 0;
  while (keep < chain_.size() && keep < comps.size() && chain_[keep].first == comps[keep]) ++keep;
  chain_.erase(chain_.begin() + static_cast<std::ptrdiff_t>(keep), chain_.end());
  const size_t cached = std::min(comps.size(), kMaxCached);
  for (size_t i = keep; i < cached; ++i) {
    const int cur = i == 0 ? root_ : chain_.back().second.get();
    UniqueFd next(::openat(cur, comps[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) {
      const int err = errno;
      return WalkError(cur, JoinComps(comps, 0, i + 1), comps[i], err);
    }
    chain_.emplace_back(comps[i], std::move(next));
  }
  if (comps.empty()) return root_;
  if (cached == comps.size()) return chain_.back().second.get();
  // Deeper than the cache goes: the rest is walked without keeping it.
  auto fd = OpenDirBeneath(chain_.back().second.get(), JoinComps(comps, cached, comps.size()));
  if (!fd.ok()) return Status(fd.status().code(), JoinComps(comps, 0, cached) + "/" + fd.status().message());
  deep_ = std::move(fd).value();
  return deep_.get();
}

}  // namespace cm::apply
