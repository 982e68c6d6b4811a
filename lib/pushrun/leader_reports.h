// The CCM's store of cm-leader segment reports (docs/protocol/leader.md):
// the latest report per segment, so the controller knows who leads a site.
// Reports arrive as the body of POST /v1/leader-report on the CCM's HTTP
// server, sent by `cm-leader run --ccm <the CCM's HTTP address>` with a
// CM-Auth stamp the handler checks (Parse, then Add). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "util/status.h"

namespace cm::pushrun {

struct LeaderReport {
  std::string segment;
  std::string leader_ip;   // from leader_address "a.b.c.d:port"
  uint64_t epoch = 0;
  uint64_t cpu_permille = 0, free_disk_mb = 0;
  std::string location;
  int64_t received_ms = 0;  // steady clock, milliseconds
  uint64_t sequence = 0;    // order of arrival (1, 2, ...)
};

class LeaderReports {
 public:
  LeaderReports() = default;
  // Records a report; a report from an older term than the segment's latest
  // is dropped. Returns whether it became the segment's latest.
  bool Add(LeaderReport report);
  // Called after every report that became its segment's latest, on the
  // thread that added it (an HTTP handler's). Set before
  // reports arrive.
  void SetOnReport(std::function<void(const LeaderReport&)> fn) { on_report_ = std::move(fn); }
  std::optional<LeaderReport> Latest(const std::string& segment) const;
  // Parses one report (a POST body).
  static std::optional<LeaderReport> Parse(const std::string& line);

 private:
  std::function<void(const LeaderReport&)> on_report_;
  mutable std::mutex mu_;
  std::map<std::string, LeaderReport> latest_;
  uint64_t seq_ = 0;
};

}  // namespace cm::pushrun
