// The CCM's listener for cm-leader segment reports (docs/protocol/leader.md:
// one JSON line per TCP connection, sent by `cm-leader run --ccm ADDR:PORT`).
// Keeps the latest report per segment; the controller asks it who leads a
// site. Runs one thread; plain sockets (no Asio needed for this).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

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
  // listen: "ip:port". Starts the accept thread.
  static Result<std::unique_ptr<LeaderReports>> Start(const std::string& listen);
  ~LeaderReports();
  std::optional<LeaderReport> Latest(const std::string& segment) const;
  void Stop();
  // Parses one report line (exposed for tests).
  static std::optional<LeaderReport> Parse(const std::string& line);

 private:
  LeaderReports() = default;
  void Loop();
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::map<std::string, LeaderReport> latest_;
  uint64_t seq_ = 0;
};

}  // namespace cm::pushrun
