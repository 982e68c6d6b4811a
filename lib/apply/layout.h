// The on-disk layout of a content root (docs/LAYOUT.md):
//
//   ROOT/current -> releases/<id>     the web server's document root (a relative symlink)
//   ROOT/releases/<id>/               committed trees, <id> = s<serial, 12 digits>-<job>
//   ROOT/.current.tmp                 the new symlink, only for an instant during a switch
//   ROOT/.cm/lock                     flock()ed by the running cm-apply
//   ROOT/.cm/state                    what is applied, current, previous, staged (state.h)
//   ROOT/.cm/journal                  exists only during a switch (journal.h)
//   ROOT/.cm/stage/<name>/            the tree being staged; <name> = <job>.p<part>
//   ROOT/.cm/stage/<name>.dirmeta     desired directory metadata (dir_meta.h)
//   ROOT/.cm/reports/<serial>.json    one report per assignment
//   ROOT/.cm/trash/                   releases being deleted by retention
//   ROOT/.cm/manifests/<id>.mf        each release's manifest (release_manifest.h)
//   ROOT/.cm/spool-*                  an assignment read from stdin
//
// Everything lives on one file system: staging hard-links live files and
// commit renames the stage into releases/.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace cm::apply {

struct Layout {
  explicit Layout(std::string root_dir);
  std::string root, current, current_tmp, releases, meta, lock, state, journal, stage, reports, trash, manifests;

  std::string Release(const std::string& id) const { return releases + "/" + id; }
  std::string StageDir(const std::string& name) const { return stage + "/" + name; }
  std::string DirMetaPath(const std::string& name) const { return stage + "/" + name + ".dirmeta"; }
  std::string Report(uint64_t serial) const { return reports + "/" + std::to_string(serial) + ".json"; }
};

// A job id made safe as a file name: bytes outside [A-Za-z0-9._-] and a
// leading '.' become '_'. (The state keeps the real job id.)
std::string SafeName(std::string_view job);
// "s000000000042-<SafeName(job)>"
std::string ReleaseId(uint64_t serial, std::string_view job);
// The stage directory name of one part of a job: "<SafeName(job)>.p<part>".
std::string StageName(std::string_view job, uint32_t part);
// The job part of a release id, as SafeName() made it ("" if not an id).
std::string ReleaseJob(std::string_view id);
// The serial a release id starts with; 0 if the id is not one of ours.
uint64_t ReleaseSerial(std::string_view id);

// Creates ROOT/.cm and its subdirectories and ROOT/releases. ROOT must exist
// (kNotFound otherwise). ROOT/.cm, its subdirectories and its state, journal
// and lock files must be of the running user (euid), not symlinks, and not
// group or world writable (kUnsafePath otherwise: another user could reset
// last_serial and downgrade); they are tightened to 0700/0600.
Status EnsureLayout(const Layout& l);
// The check above for one path (a missing file is fine; a missing directory is not).
Status CheckPrivate(const std::string& path, bool dir);

// The release ROOT/current points at ("" when there is none). kUsage when
// ROOT/current exists but is not a symlink into releases/.
Result<std::string> ReadCurrent(const Layout& l);

}  // namespace cm::apply
