// A relay's counters for node_exporter's textfile collector (relay.toml
// `metrics`, --metrics FILE; man cm-push(1) lists them):
//   cm_relay_up                                   1 while it runs, 0 once stopped
//   cm_relay_transfers_total{role,outcome}        leader: reported|failed; member: staged|committed|failed
//   cm_relay_bytes_fetched_total                  checked bytes fetched from sources
//   cm_relay_bytes_served_total                   bytes served over GET /v1/content
//   cm_relay_source_failures_total                fetch attempts that failed by the source's fault
//   cm_relay_refusals_total{reason}               requests refused (auth verdicts, wrong name, bad body)
//   cm_relay_last_serial                          the highest serial ordered or expected
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "util/status.h"

namespace cm::pushrun {

class RelayMetrics {
 public:
  void Transfer(const std::string& role, const std::string& outcome);
  void Refusal(const std::string& reason);
  void SourceFailure() { ++source_failures_; }
  void Fetched(uint64_t bytes) { *fetched_ += bytes; }
  void Serial(uint64_t serial);
  // Counts GET /v1/content bytes (content_body.h keeps it alive).
  const std::shared_ptr<std::atomic<uint64_t>>& served() const { return served_; }

  // The textfile, Prometheus text format 0.0.4.
  std::string Render(bool up) const;
  // Writes Render(up) to `path` through "<path>.tmp" and a rename, so
  // node_exporter never reads half a file.
  Status Write(const std::string& path, bool up) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, uint64_t> transfers_;
  std::map<std::string, uint64_t> refusals_;
  std::atomic<uint64_t> source_failures_{0};
  std::shared_ptr<std::atomic<uint64_t>> fetched_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::shared_ptr<std::atomic<uint64_t>> served_ = std::make_shared<std::atomic<uint64_t>>(0);
  std::atomic<uint64_t> last_serial_{0};
};

}  // namespace cm::pushrun
