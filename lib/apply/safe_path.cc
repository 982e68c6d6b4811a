#include "apply/safe_path.h"

#include "util/path_util.h"

#include <fcntl.h>
#include <sys/stat.h>

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

}  // namespace cm::apply
