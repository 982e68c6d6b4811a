// cm-leader's delivery of segment reports to the CCM: each report the core
// emits (Transport::kReport, the JSON alone) becomes one HTTP/1.1
// `POST /v1/leader-report` on a fresh connection (Connection: close) to the
// CCM's HTTP server, stamped with a CM-Auth mac header (util/cm_auth.h:
// ReportKey(group key), from = this node, to = "ccm", exp = now + 600 s, a
// random nonce) exactly like every other report the CCM takes. Delivery runs
// on its own thread so the election never waits on the CCM; a report the
// CCM does not take is logged (once per change between taken and not) and
// not retried: the next one (every membership or leadership change) carries
// the whole state again.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "proto/core.h"
#include "util/group_key.h"

namespace cm::leaderrun {

// "ADDR:PORT" or "http://ADDR:PORT[/]" (the CCM's HTTP listen address);
// false on anything else.
bool ParseCcmAddress(std::string_view s, proto::Address* out);

// The CM-Auth header value for a report body (pure but for the clock and
// nonce passed in).
std::string StampReport(const GroupKey& group_key, const std::string& from, const std::string& body, int64_t now_s,
                        const std::string& nonce);

class Reporter {
 public:
  // from: this node's name in the stamp (a CM-Auth name: printable ASCII
  // without space, '=' or ',').
  Reporter(proto::Address ccm, GroupKey group_key, std::string from);
  ~Reporter();  // gives queued reports up to ~3 s, then stops
  // Queues one report (never blocks; at most kMaxQueued wait, the oldest
  // dropped first: the newest carries the whole state).
  void Post(std::string json);

  static constexpr size_t kMaxQueued = 8;

 private:
  void Loop();
  const proto::Address ccm_;
  const GroupKey key_;
  const std::string from_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stop_ = false;
  bool failing_ = false;  // the last delivery failed (for logging changes only)
  std::thread thread_;
};

}  // namespace cm::leaderrun
