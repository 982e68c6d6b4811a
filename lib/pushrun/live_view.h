// The operator's live view on a terminal (stderr): one line per site with
// its leader, bytes held, rate and how many servers have finished.
// Not thread-safe by itself: the controller calls it under its lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace cm::pushrun {

class LiveView {
 public:
  void AddSite(const std::string& site, const std::string& leader, size_t servers);
  void SetBytes(const std::string& site, const std::string& leader, uint64_t bytes, uint64_t size);
  void SetServer(const std::string& site, const std::string& server, const std::string& state);
  // Redraws (at most every 200 ms).
  void Draw();

 private:
  struct Row {
    std::string leader;
    size_t servers = 0;
    uint64_t bytes = 0, size = 0, last_bytes = 0;
    double rate = 0;
    std::map<std::string, std::string> states;
  };
  std::map<std::string, Row> rows_;
  size_t drawn_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace cm::pushrun
