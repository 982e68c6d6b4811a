#include "pushrun/live_tree.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "push/converge.h"
#include "util/exit_codes.h"
#include "util/json_value.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::pushrun {

std::optional<push::LiveTree> ParseVerifyLive(int exit_code, const std::string& out, std::string* error) {
  if (exit_code == kExitNotFound) {
    push::LiveTree t;
    t.live_manifest = push::EmptyManifestHex();
    return t;
  }
  if (exit_code != kExitOk && exit_code != kExitBaseMismatch) {
    *error = "cm-apply verify-live exited " + std::to_string(exit_code);
    return std::nullopt;
  }
  std::string line = out;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (size_t nl = line.rfind('\n'); nl != std::string::npos) line = line.substr(nl + 1);
  auto v = ParseJson(line);
  if (!v.ok()) {
    *error = "cm-apply verify-live: " + v.status().message();
    return std::nullopt;
  }
  auto t = push::ParseLiveTree(*v);
  if (!t.ok()) {
    *error = "cm-apply verify-live: " + t.status().message();
    return std::nullopt;
  }
  return *t;
}

namespace {
// What changes whenever cm-apply stages, switches or rolls back.
std::string StateFingerprint(const std::string& root) {
  std::string fp;
  struct stat st;
  if (::stat((root + "/.cm/state").c_str(), &st) == 0)
    fp = std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
  char buf[4096];
  ssize_t n = ::readlink((root + "/current").c_str(), buf, sizeof buf);
  if (n > 0) fp += "|" + std::string(buf, static_cast<size_t>(n));
  return fp;
}
}  // namespace

std::optional<push::LiveTree> LiveTreeProbe::Get() {
  if (root_.empty()) return std::nullopt;
  std::lock_guard<std::mutex> l(mu_);
  const auto now = std::chrono::steady_clock::now();
  const std::string fp = StateFingerprint(root_);
  if (have_ && now - at_ < kFresh && fp == fingerprint_) return last_;
  fingerprint_ = fp;
  ProcessOptions po;
  po.timeout = std::chrono::seconds(60);
  auto r = RunProcess({cm_apply_, "verify-live", "--root", root_, "--json"}, po);
  std::string error;
  std::optional<push::LiveTree> t;
  if (!r.ok()) error = r.status().message();
  else t = ParseVerifyLive(r->exit_code, r->out, &error);
  if (!error.empty()) log::Info("live tree unknown: " + error + (r.ok() ? ": " + LastLine(r->err) : ""));
  if (t) {  // the newest serial applied: catch-ups are numbered above it (converge_run.h)
    auto st = RunProcess({cm_apply_, "status", "--root", root_, "--json"}, po);
    if (st.ok() && st->exit_code == 0)
      if (auto v = ParseJson(st->out); v.ok() && v->is_object())
        t->last_serial = std::max(v->Uint("last_stage_serial"), v->Uint("last_switch_serial"));
  }
  last_ = t;
  have_ = true;
  at_ = std::chrono::steady_clock::now();
  return t;
}

}  // namespace cm::pushrun
