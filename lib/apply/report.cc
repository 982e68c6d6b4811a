#include "apply/report.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>
#include <vector>

#include "apply/kv_text.h"

#include "util/file_util.h"
#include "util/json.h"

namespace cm::apply {

std::string ReportJson(const Report& r) {
  JsonObject o;
  o.Str("file", r.file).Str("job", r.job).Uint("serial", r.serial).Str("type", r.type).Uint("part", r.part);
  o.Bool("last_part", r.last_part).Str("action", r.action);
  o.Str("result", r.status.ok() ? "ok" : "error").Str("code", CodeName(r.status.code()));
  o.Str("message", r.status.message()).Str("release", r.release).Uint("release_serial", r.release_serial);
  o.Str("manifest", r.manifest).Str("staged_manifest", r.staged_manifest);
  o.Uint("files_created", r.stats.created).Uint("files_patched", r.stats.patched);
  o.Uint("files_removed", r.stats.removed).Uint("dirs_created", r.stats.dirs);
  o.Uint("files_renamed", r.stats.renamed).Uint("files_copied", r.stats.copied);
  o.Uint("meta_changed", r.stats.meta).Uint("symlinks", r.stats.symlinks);
  o.Uint("bytes_written", r.stats.bytes_written).Int("duration_ms", r.duration_ms).Str("host", r.host);
  JsonArray hooks;
  for (const HookRun& h : r.hooks) {
    JsonObject j;
    j.Str("name", h.name).Int("exit", h.exit_code).Bool("timed_out", h.timed_out).Str("error", h.start_error);
    j.Int("duration_ms", h.duration_ms).Str("output", h.output);
    hooks.Raw(j.Build());
  }
  o.Raw("hooks", hooks.Build());
  return o.Build();
}

std::string ReportSummary(const Report& r) {
  std::string s = (r.file.empty() ? std::string("") : r.file + ": ") + r.action;
  if (!r.job.empty()) s += " job " + r.job;
  if (r.serial) s += " serial " + std::to_string(r.serial);
  if (r.action == "staged") {
    s += " part " + std::to_string(r.part) + (r.last_part ? " (last)" : "") + ": " + std::to_string(r.stats.created) +
         " created, " + std::to_string(r.stats.patched) + " patched, " + std::to_string(r.stats.removed) +
         " removed, " + std::to_string(r.stats.bytes_written) + " bytes written";
  }
  s += "; live: " + (r.release.empty() ? std::string("(none)") : r.release);
  return s;
}

Status WriteReport(const Layout& l, const Report& r, int keep) {
  CM_RETURN_IF_ERROR(WriteFileAtomic(l.Report(r.serial), ReportJson(r) + "\n", 0644));
  std::vector<std::pair<uint64_t, std::string>> all;
  if (DIR* d = ::opendir(l.reports.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      uint64_t serial = 0;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0 && ParseU64(n.substr(0, n.size() - 5), &serial))
        all.emplace_back(serial, n);
    }
    ::closedir(d);
  }
  const size_t want = static_cast<size_t>(keep < 1 ? 1 : keep);
  if (all.size() <= want) return Status::Ok();
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i + want < all.size(); ++i) {
    const std::string p = l.reports + "/" + all[i].second;
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return ErrnoError(p, errno);
  }
  return Status::Ok();
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

}  // namespace cm::apply
