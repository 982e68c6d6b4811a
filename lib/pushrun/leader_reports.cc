#include "pushrun/leader_reports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>

#include "util/json_value.h"
#include "util/log.h"

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

Result<std::unique_ptr<LeaderReports>> LeaderReports::Start(const std::string& listen) {
  auto r = std::make_unique<LeaderReports>();
  CM_RETURN_IF_ERROR(r->Listen(listen));
  return r;
}

Status LeaderReports::Listen(const std::string& listen) {
  if (fd_ >= 0) return Error(Code::kUsage, "leader_reports: already listening");
  auto colon = listen.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  if (colon == std::string::npos || inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sa.sin_addr) != 1)
    return Error(Code::kUsage, "leader_reports: bad ADDR:PORT: " + listen);
  char* end = nullptr;
  unsigned long port = std::strtoul(listen.c_str() + colon + 1, &end, 10);
  if (end == listen.c_str() + colon + 1 || *end != '\0' || port > 65535)
    return Error(Code::kUsage, "leader_reports: bad ADDR:PORT: " + listen);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket", errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return ErrnoError("leader_reports " + listen, e);
  }
  fd_ = fd;
  thread_ = std::thread([this] { Loop(); });
  return Status::Ok();
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

void LeaderReports::Loop() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    int c = accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{1, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string line;
    char buf[4096];
    while (line.size() < (64 << 10)) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
      if (line.find('\n') != std::string::npos) break;
    }
    close(c);
    auto nl = line.find('\n');
    if (nl != std::string::npos) line.resize(nl);
    if (key_) {
      auto opened = OpenReport(*key_, line);
      if (!opened) {
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
        log::Warn(std::string("refused a cm-leader report from ") + ip + ": not sealed with the group key");
        continue;
      }
      line = std::move(*opened);
    }
    if (auto rep = Parse(line)) Add(std::move(*rep));
  }
}

std::optional<LeaderReport> LeaderReports::Latest(const std::string& segment) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = latest_.find(segment);
  if (it == latest_.end()) return std::nullopt;
  return it->second;
}

void LeaderReports::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

LeaderReports::~LeaderReports() { Stop(); }

}  // namespace cm::pushrun
