// The desired metadata of a staged tree's directories.
//
// While a tree is staged its directories stay owner-writable (mode | 0700) so
// entries can be added under any of them. Most directories already have their
// true metadata while staged (the clone gives it to them, the stager keeps
// their mtimes: tree_clone.h, stager.h). The exceptions are kept in an
// append-only log beside the stage (ROOT/.cm/stage/<name>.dirmeta) and
// applied bottom-up when the tree is committed: the root directory, a
// directory whose true mode lacks owner rwx, one made or changed by MKDIR or
// SET_META. (A log written by an older cm-apply names every directory; it is
// applied the same way.)
//
// Log format (text, one record per line, paths percent-encoded, "." = the
// tree's root directory):
//   M <path> <mode octal> <mtime_ns> <has_owner 0|1> <uid> <gid>
//   R <old path> <new path>      a directory was renamed (its records follow it)
//   D <path>                     a subtree was removed (its records are dropped)
// Replaying the records in order gives the desired state; the last M wins.
#pragma once

#include <map>
#include <string>

#include "pack/assignment_format.h"
#include "util/file_util.h"
#include "util/status.h"

namespace cm::apply {

// Path ("" = root) -> desired metadata.
using DirMetaMap = std::map<std::string, pack::Meta>;

class DirMetaLog {
 public:
  // Opens (creating if needed) the log for appending.
  Status Open(const std::string& path);
  const std::string& path() const { return path_; }
  Status Set(const std::string& dir, const pack::Meta& meta);
  Status Renamed(const std::string& from, const std::string& to);
  Status Removed(const std::string& dir);

 private:
  Status Append(const std::string& line);
  UniqueFd fd_;
  std::string path_;
};

std::string EncodeLogPath(const std::string& path);
bool DecodeLogPath(const std::string& enc, std::string* path);

// Replays a log file (kCorrupt on a malformed record; a missing file is an
// empty map).
Result<DirMetaMap> ReplayDirMeta(const std::string& log_path);
Result<DirMetaMap> ReplayDirMetaText(const std::string& text);

// Applies the map to the tree under tree_fd, deepest directories first so a
// read-only parent never blocks a child. Entries that no longer name a
// directory are skipped. The root entry ("") is applied only when
// include_root is set (it is applied after the tree has been moved into
// releases/, because moving a directory needs write access to it).
// A directory that already carries its record is left alone.
// fsync_each: fsync every directory changed (instead of a syncfs afterwards).
Status ApplyDirMeta(int tree_fd, const DirMetaMap& dirs, bool include_root, bool fsync_each = false);

// Mode a directory has while staged.
inline uint32_t StagingDirMode(uint32_t mode) { return (mode & 07777) | 0700; }

}  // namespace cm::apply
