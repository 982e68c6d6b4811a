#include "pushrun/leader_reports.h"

#include <chrono>

#include "util/json_value.h"

namespace cm::pushrun {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::optional<LeaderReport> LeaderReports::Parse(const std::string& line) {
  auto v = ParseJson(line);
  if (!v.ok() || !v->is_object()) return std::nullopt;
  LeaderReport r;
  r.segment = v->Str("segment");
  std::string addr = v->Str("leader_address");
  r.leader_ip = addr.substr(0, addr.rfind(':'));
  r.epoch = v->Uint("epoch");
  r.cpu_permille = v->Uint("cpu_permille");
  r.free_disk_mb = v->Uint("free_disk_mb");
  r.location = v->Str("location");
  if (r.segment.empty() || r.leader_ip.empty()) return std::nullopt;
  return r;
}

bool LeaderReports::Add(LeaderReport rep) {
  {
    std::lock_guard<std::mutex> l(mu_);
    rep.received_ms = NowMs();
    rep.sequence = ++seq_;
    auto& slot = latest_[rep.segment];
    // A report from an older term never replaces a newer one.
    if (!slot.segment.empty() && rep.epoch < slot.epoch) return false;
    slot = rep;
  }
  if (on_report_) on_report_(rep);
  return true;
}

std::optional<LeaderReport> LeaderReports::Latest(const std::string& segment) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = latest_.find(segment);
  if (it == latest_.end()) return std::nullopt;
  return it->second;
}

}  // namespace cm::pushrun
