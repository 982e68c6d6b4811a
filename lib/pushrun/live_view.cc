#include "pushrun/live_view.h"

#include <cstdio>

namespace cm::pushrun {

void LiveView::AddSite(const std::string& site, const std::string& leader, size_t servers) {
  Row& r = rows_[site];
  r.leader = leader;
  r.servers = servers;
  r.bytes = r.last_bytes = 0;
  r.states.clear();
}

void LiveView::SetBytes(const std::string& site, const std::string& leader, uint64_t bytes, uint64_t size) {
  Row& r = rows_[site];
  r.leader = leader;
  r.bytes = bytes;
  r.size = size;
}

void LiveView::SetServer(const std::string& site, const std::string& server, const std::string& state) {
  rows_[site].states[server] = state;
}

void LiveView::Draw() {
  auto now = std::chrono::steady_clock::now();
  double dt = std::chrono::duration<double>(now - last_).count();
  if (dt < 0.2) return;
  last_ = now;
  if (drawn_) std::fprintf(stderr, "\x1b[%zuA", drawn_);
  drawn_ = 0;
  for (auto& [site, r] : rows_) {
    if (dt < 10) r.rate = 0.7 * r.rate + 0.3 * (static_cast<double>(r.bytes - std::min(r.bytes, r.last_bytes)) / dt);
    r.last_bytes = r.bytes;
    size_t done = 0, failed = 0;
    for (const auto& [s, st] : r.states) (st == "failed" ? failed : done)++;
    std::fprintf(stderr, "\x1b[2K%-12s %-14s %8.1f/%.1f MiB %7.1f MB/s  done %zu/%zu%s\n", site.c_str(),
                 r.leader.c_str(), static_cast<double>(r.bytes) / (1 << 20), static_cast<double>(r.size) / (1 << 20),
                 r.rate / 1e6, done, r.servers, failed ? ("  failed " + std::to_string(failed)).c_str() : "");
    ++drawn_;
  }
  std::fflush(stderr);
}

}  // namespace cm::pushrun
