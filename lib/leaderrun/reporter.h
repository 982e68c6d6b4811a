// cm-leader's delivery of segment reports to the CCM: each report the core
// emits (Transport::kReport, the JSON alone) becomes an HTTP/1.1
// `POST /v1/leader-report` on a fresh connection (Connection: close) to the
// CCM's HTTP server, stamped with a CM-Auth mac header (util/cm_auth.h:
// ReportKey(group key), from = this node, to = "ccm", exp = now + 600 s, a
// new random nonce per attempt) exactly like every other report the CCM
// takes. Delivery runs on one thread of its own, one connection at a time,
// so the election never waits on the CCM. When it is re-sent, and what is
// logged: report_schedule.h (newest report only; back-off 1 s doubling to
// 30 s until a 2xx; 401/403 every 30 s; after a 2xx, on every change and a
// refresh every 60 s).
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "leaderrun/report_schedule.h"
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
  // without space, '=' or ','). timing: the schedule's (tests shorten it).
  Reporter(proto::Address ccm, GroupKey group_key, std::string from,
           ReportSchedule::Timing timing = ReportSchedule::Timing{});
  ~Reporter();  // a report not yet sent gets one last attempt (<= 3 s), then the thread ends
  // Replaces the report to deliver (never blocks).
  void Post(std::string json);
  // Stops sending (and refreshing) the report: this node no longer leads.
  void Withdraw();
  // Whether the CCM took the last attempt (for tests).
  bool acknowledged();
  // Delivery attempts so far (for tests).
  uint64_t attempts();

 private:
  void Loop();
  const proto::Address ccm_;
  const GroupKey key_;
  const std::string from_;
  std::mutex mu_;
  std::condition_variable cv_;
  ReportSchedule schedule_;  // under mu_
  uint64_t attempts_ = 0;    // under mu_
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cm::leaderrun
