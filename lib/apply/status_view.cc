#include "apply/status_view.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "apply/kv_text.h"
#include "apply/layout.h"
#include "apply/release_manifest.h"
#include "apply/state.h"
#include "util/file_util.h"
#include "util/json.h"

namespace cm::apply {

Result<StatusView> ReadStatus(const std::string& root) {
  Layout l(root);
  struct stat st;
  if (::stat(l.root.c_str(), &st) != 0) return ErrnoError(l.root, errno);
  if (!S_ISDIR(st.st_mode)) return Error(Code::kUsage, l.root + ": not a directory");
  StatusView v;
  v.root = l.root;
  v.initialized = ::access(l.meta.c_str(), F_OK) == 0;
  CM_ASSIGN_OR_RETURN(v.current, ReadCurrent(l));
  CM_ASSIGN_OR_RETURN(State s, LoadState(l.state));
  v.previous = s.previous;
  v.last_serial = s.LastSerialAny();
  v.last_stage_serial = s.last_stage_serial;
  v.last_switch_serial = s.last_switch_serial;
  v.current_serial = ReleaseSerial(v.current);
  v.staged_job = s.staged_job;
  v.staged_type = s.staged_type;
  v.staged_parts = s.staged_parts;
  v.staged_complete = s.staged_complete;
  v.switch_interrupted = ::access(l.journal.c_str(), F_OK) == 0;
  // Read-only: a manifest not recorded yet (a root from an older version) is "".
  v.manifest = RecordedManifestHex(l, v.current, false);
  if (const std::string staged = StagedRelease(s); !staged.empty())
    v.staged_manifest = RecordedManifestHex(l, staged, false);
  uint64_t newest = 0;
  std::string newest_name;
  if (DIR* d = ::opendir(l.reports.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      uint64_t serial;
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0 && ParseU64(n.substr(0, n.size() - 5), &serial) &&
          serial >= newest) {
        newest = serial;
        newest_name = n;
      }
    }
    ::closedir(d);
  }
  if (!newest_name.empty()) {
    auto r = ReadFileToString(l.reports + "/" + newest_name);
    if (r.ok()) {
      v.last_report_path = l.reports + "/" + newest_name;
      v.last_report = *r;
      while (!v.last_report.empty() && v.last_report.back() == '\n') v.last_report.pop_back();
    }
  }
  return v;
}

std::string StatusJson(const StatusView& v) {
  JsonObject o;
  o.Str("root", v.root);
  v.current.empty() ? o.Null("current") : o.Str("current", v.current);
  // The live release and its serial, named as in every report.
  o.Str("release", v.current).Uint("release_serial", v.current_serial).Str("manifest", v.manifest);
  v.previous.empty() ? o.Null("previous") : o.Str("previous", v.previous);
  o.Uint("last_serial", v.last_serial);
  o.Uint("last_stage_serial", v.last_stage_serial).Uint("last_switch_serial", v.last_switch_serial);
  if (v.staged_job.empty()) {
    o.Null("staged");
  } else {
    JsonObject st;
    st.Str("job", v.staged_job).Str("type", v.staged_type).Uint("parts", v.staged_parts);
    st.Bool("complete", v.staged_complete);
    st.Str("manifest", v.staged_manifest);
    o.Raw("staged", st.Build());
  }
  o.Str("staged_manifest", v.staged_manifest);
  o.Bool("switch_interrupted", v.switch_interrupted);
  v.last_report.empty() ? o.Null("last_report") : o.Raw("last_report", v.last_report);
  return o.Build();
}

std::string StatusText(const StatusView& v) {
  auto or_none = [](const std::string& s) { return s.empty() ? std::string("(none)") : s; };
  std::string out = "root:        " + v.root + "\n";
  out += "current:     " + or_none(v.current) + "\n";
  if (!v.manifest.empty()) out += "manifest:    " + v.manifest + "\n";
  out += "previous:    " + or_none(v.previous) + "\n";
  out += "last serial: " + std::to_string(v.last_stage_serial) + " (staging), " +
         std::to_string(v.last_switch_serial) + " (commit/rollback)\n";
  if (v.staged_job.empty()) {
    out += "staged:      (none)\n";
  } else {
    out += "staged:      job " + v.staged_job + " (" + v.staged_type + "), " + std::to_string(v.staged_parts) +
           " part(s), " + (v.staged_complete ? "complete" : "last part missing") + "\n";
  }
  if (v.switch_interrupted) out += "note:        a switch was interrupted; the next cm-apply run finishes it\n";
  // People get the report's file; scripts get its JSON with --json.
  if (!v.last_report_path.empty()) out += "last report: " + v.last_report_path + "\n";
  return out;
}

namespace {
JsonArray Paths(const std::vector<std::string>& v, bool* truncated) {
  JsonArray a;
  for (size_t i = 0; i < v.size() && i < kMaxLivePaths; ++i) a.Str(v[i]);
  if (v.size() > kMaxLivePaths) *truncated = true;
  return a;
}
}  // namespace

std::string LiveJson(const LiveTree& t) {
  JsonObject o;
  bool truncated = false;
  o.Uint("v", 1).Str("release", t.release).Uint("release_serial", ReleaseSerial(t.release));
  o.Str("manifest", ToHex(t.recorded_hash)).Str("live_manifest", ToHex(t.now_hash)).Bool("ok", t.ok());
  o.Raw("changed", Paths(t.diff.changed, &truncated).Build());
  o.Raw("missing", Paths(t.diff.missing, &truncated).Build());
  o.Raw("extra", Paths(t.diff.extra, &truncated).Build());
  o.Bool("truncated", truncated);
  return o.Build();
}

std::string LiveText(const LiveTree& t) {
  std::string out = t.release + ": manifest " + ToHex(t.recorded_hash) + "\n";
  if (t.ok()) return out + "live tree matches it\n";
  out += "live tree differs (manifest " + ToHex(t.now_hash) + "): " + std::to_string(t.diff.size()) + " paths\n";
  size_t shown = 0;
  auto list = [&](const char* tag, const std::vector<std::string>& v) {
    for (const auto& p : v)
      if (shown++ < kMaxLivePaths) out += std::string(tag) + " " + p + "\n";
  };
  list("changed", t.diff.changed);
  list("missing", t.diff.missing);
  list("extra  ", t.diff.extra);
  if (shown > kMaxLivePaths) out += "(" + std::to_string(shown - kMaxLivePaths) + " more)\n";
  return out;
}

}  // namespace cm::apply
