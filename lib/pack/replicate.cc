#include "pack/replicate.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>

#include "delta/manifest.h"
#include "delta/tree_diff.h"
#include "util/file_util.h"

namespace cm::pack {

Result<PackResult> PackTree(const std::string& dir, const PackOptions& opts) {
  if (!IsWholeTree(opts.type)) return Error(Code::kUsage, "a whole-tree assignment must be replicate or restore");
  // The table of a whole tree holds entries only (no data): spool it to an
  // unlinked temporary file, then pack it like any delta.
  const char* t = std::getenv("TMPDIR");
  UniqueFd spool(::open(t && *t ? t : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!spool) return ErrnoError("temporary file", errno);
  FdSink sink(spool.get());
  delta::DeltaTableWriter table(&sink);
  delta::TreeDiffOptions d;
  d.old_may_be_missing = true;
  // A path that cannot exist: the diff treats a missing old tree as empty.
  auto r = delta::DiffTrees(dir + "/\x01-cm-no-such-dir", dir, d, &table, nullptr);
  if (!r.ok()) return r.status();
  if (::lseek(spool.get(), 0, SEEK_SET) != 0) return ErrnoError("temporary file", errno);
  FdSource src(spool.get());
  // The staged tree must be this one (BASE result manifest): cm-apply checks it.
  PackOptions o = opts;
  if (!o.result_manifest && !o.no_base) {
    auto m = delta::BuildManifest(dir, {});
    if (m.ok()) o.result_manifest = delta::ManifestHash(*m);
  }
  return PackDeltaTable(&src, dir, o);
}

}  // namespace cm::pack
