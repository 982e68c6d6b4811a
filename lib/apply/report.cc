#include "apply/report.h"

#include <unistd.h>

#include "util/file_util.h"
#include "util/json.h"

namespace cm::apply {

std::string ReportJson(const Report& r) {
  JsonObject o;
  o.Str("file", r.file).Str("job", r.job).Uint("serial", r.serial).Str("type", r.type).Uint("part", r.part);
  o.Bool("last_part", r.last_part).Str("action", r.action);
  o.Str("result", r.status.ok() ? "ok" : "error").Str("code", CodeName(r.status.code()));
  o.Str("message", r.status.message()).Str("release", r.release);
  o.Uint("files_created", r.stats.created).Uint("files_patched", r.stats.patched);
  o.Uint("files_removed", r.stats.removed).Uint("dirs_created", r.stats.dirs);
  o.Uint("files_renamed", r.stats.renamed).Uint("files_copied", r.stats.copied);
  o.Uint("meta_changed", r.stats.meta).Uint("symlinks", r.stats.symlinks);
  o.Uint("bytes_written", r.stats.bytes_written).Int("duration_ms", r.duration_ms).Str("host", r.host);
  return o.Build();
}

Status WriteReport(const Layout& l, const Report& r) {
  return WriteFileAtomic(l.Report(r.serial), ReportJson(r) + "\n", 0644);
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

}  // namespace cm::apply
