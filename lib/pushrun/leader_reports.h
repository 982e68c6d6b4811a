// The CCM's store of cm-leader segment reports (docs/protocol/leader.md):
// the latest report per segment, so the controller knows who leads a site.
// Reports arrive as the body of POST /v1/leader-report on the CCM's HTTP
// server (Add), or on the old listener: one JSON line per TCP connection,
// sent by `cm-leader run --ccm ADDR:PORT` (Start/Listen: one thread, plain
// sockets). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "util/group_key.h"
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
  LeaderReports() = default;  // a store without a listener
  // listen: "ip:port". Starts the accept thread.
  static Result<std::unique_ptr<LeaderReports>> Start(const std::string& listen);
  // Starts the accept thread on this store (once).
  Status Listen(const std::string& listen);
  ~LeaderReports();
  // Records a report; a report from an older term than the segment's latest
  // is dropped. Returns whether it became the segment's latest.
  bool Add(LeaderReport report);
  // Called after every report that became its segment's latest, on the
  // thread that added it (the listener's, or an HTTP handler's). Set before
  // reports arrive.
  void SetOnReport(std::function<void(const LeaderReport&)> fn) { on_report_ = std::move(fn); }
  // The listener takes only reports sealed with this group key (SealReport,
  // util/group_key.h); others are refused with a log line. Set before Listen.
  void SetKey(const GroupKey& key) { key_ = key; }
  std::optional<LeaderReport> Latest(const std::string& segment) const;
  void Stop();
  // Parses one report line (exposed for tests).
  static std::optional<LeaderReport> Parse(const std::string& line);

 private:
  void Loop();
  std::function<void(const LeaderReport&)> on_report_;
  std::optional<GroupKey> key_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<std::string, LeaderReport> latest_;
  uint64_t seq_ = 0;
};

}  // namespace cm::pushrun
