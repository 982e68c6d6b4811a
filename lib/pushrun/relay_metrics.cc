#include "pushrun/relay_metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "util/file_util.h"

namespace cm::pushrun {

void RelayMetrics::Transfer(const std::string& role, const std::string& outcome) {
  std::lock_guard<std::mutex> l(mu_);
  ++transfers_[{role, outcome}];
}

void RelayMetrics::Refusal(const std::string& reason) {
  std::lock_guard<std::mutex> l(mu_);
  if (refusals_.size() < 64 || refusals_.count(reason)) ++refusals_[reason];  // reasons are ours: a handful
}

void RelayMetrics::Serial(uint64_t serial) {
  uint64_t last = last_serial_.load();
  while (serial > last && !last_serial_.compare_exchange_weak(last, serial)) {
  }
}

std::string RelayMetrics::Render(bool up) const {
  std::string out;
  auto family = [&](const char* name, const char* type, const char* help) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  auto sample = [&](const std::string& name, uint64_t v) { out += name + " " + std::to_string(v) + "\n"; };
  family("cm_relay_up", "gauge", "1 while the cm-push relay runs.");
  sample("cm_relay_up", up ? 1 : 0);
  std::lock_guard<std::mutex> l(mu_);
  family("cm_relay_transfers_total", "counter", "Transfers ended, by role and outcome.");
  for (const auto& [key, n] : transfers_)
    sample("cm_relay_transfers_total{role=\"" + key.first + "\",outcome=\"" + key.second + "\"}", n);
  family("cm_relay_bytes_fetched_total", "counter", "Checked bytes fetched from sources.");
  sample("cm_relay_bytes_fetched_total", fetched_->load());
  family("cm_relay_bytes_served_total", "counter", "Bytes served over GET /v1/content.");
  sample("cm_relay_bytes_served_total", served_->load());
  family("cm_relay_source_failures_total", "counter", "Fetch attempts that failed by the source's fault.");
  sample("cm_relay_source_failures_total", source_failures_.load());
  family("cm_relay_refusals_total", "counter", "Requests refused, by reason.");
  for (const auto& [reason, n] : refusals_) sample("cm_relay_refusals_total{reason=\"" + reason + "\"}", n);
  family("cm_relay_last_serial", "gauge", "The highest serial this relay was ordered or expected to handle.");
  sample("cm_relay_last_serial", last_serial_.load());
  return out;
}

Status RelayMetrics::Write(const std::string& path, bool up) const {
  const std::string text = Render(up);
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return ErrnoError(tmp, errno);
  for (size_t done = 0; done < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(tmp, errno);
    done += static_cast<size_t>(n);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError(path, errno);
  return Status::Ok();
}

}  // namespace cm::pushrun
