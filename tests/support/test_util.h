// Helpers shared by the unit, property and pipeline tests.
#pragma once

#include <sys/types.h>

#include <string>

namespace cm::test {

// A fresh directory under $TMPDIR (or /tmp), removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

// Creates parent directories as needed. Aborts the test process on failure.
void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644);
std::string ReadFile(const std::string& path);
void MakeDirs(const std::string& path, mode_t mode = 0755);
void RemoveTree(const std::string& path);

struct ManifestOptions {
  bool mtimes = true;       // include file mtimes (seconds and nanoseconds)
  bool dir_mtimes = false;  // include directory mtimes
  bool owners = false;      // include uid/gid
};
// A deterministic text listing of a tree: one line per entry, sorted, with
// kind, permission bits, size and content hash (files) or target (symlinks).
// Two trees are equal for the pipeline's purposes iff their manifests are.
std::string Manifest(const std::string& root, const ManifestOptions& opts = {});

// Runs a shell command, returns its exit status (or 128+signal); captures stdout.
int Run(const std::string& cmd, std::string* out = nullptr);
// Directory of the built tools ($CM_BIN), or "" if unset.
std::string BinDir();

}  // namespace cm::test
