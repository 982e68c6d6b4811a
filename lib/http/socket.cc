#include "http/socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <system_error>

namespace cm::http {

bool IsTimeout(const Status& st) { return st.code() == Code::kIo && st.message() == kTimedOut; }

std::string ErrnoText(int err) {
  std::string s = std::generic_category().message(err);  // thread-safe, unlike strerror
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

namespace {

Status IoErr(int err) { return Error(Code::kIo, ErrnoText(err)); }

// Waits until fd is ready for `events`. Ok when ready (or when poll reports
// an error condition: the next syscall will say which); kIo kTimedOut at the
// deadline; kFailure when interrupted.
Status WaitFor(int fd, short events, Clock::time_point deadline, const Interrupt& intr) {
  for (;;) {
    if (intr.cancel && intr.cancel->load(std::memory_order_relaxed)) return Error(Code::kFailure, "cancelled");
    auto now = Clock::now();
    if (now >= deadline) return Error(Code::kIo, std::string(kTimedOut));
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (intr.cancel) wait = std::min(wait, kInterruptPoll);
    wait = std::min(wait, std::chrono::milliseconds(60'000));  // keeps the int conversion safe
    pollfd p[2] = {{fd, events, 0}, {intr.wake_fd, POLLIN, 0}};
    int n = ::poll(p, intr.wake_fd >= 0 ? 2 : 1, static_cast<int>(wait.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoErr(errno);
    }
    if (intr.wake_fd >= 0 && (p[1].revents & POLLIN)) return Error(Code::kFailure, "stopped");
    if (p[0].revents != 0) return Status::Ok();
  }
}

void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Result<in_addr> Resolve(const std::string& host) {
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) == 1) return a;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return Error(Code::kIo, "cannot resolve host '" + host + "': " + (rc ? ::gai_strerror(rc) : "no address"));
  }
  a = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  ::freeaddrinfo(res);
  return a;
}

}  // namespace

Socket::~Socket() { Close(); }

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    Close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Socket::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::Shutdown() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

void Socket::ShutdownWrite() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

Result<Socket> Socket::Connect(const std::string& host, uint16_t port, Clock::time_point deadline,
                               const Interrupt& intr) {
  CM_ASSIGN_OR_RETURN(in_addr addr, Resolve(host));
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.valid()) return IoErr(errno);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr = addr;
  if (::connect(s.fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno != EINPROGRESS) return IoErr(errno);
    CM_RETURN_IF_ERROR(WaitFor(s.fd_, POLLOUT, deadline, intr));
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(s.fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return IoErr(err);
  }
  SetNoDelay(s.fd_);
  return s;
}

Result<Socket> Socket::Listen(const std::string& ip, uint16_t port, int backlog) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
    return Error(Code::kUsage, "not an IPv4 address: '" + ip + "'");
  }
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.valid()) return IoErr(errno);
  int one = 1;
  ::setsockopt(s.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    return Error(Code::kIo, "bind " + ip + ":" + std::to_string(port) + ": " + ErrnoText(errno));
  }
  if (::listen(s.fd_, backlog) != 0) return IoErr(errno);
  return s;
}

Result<Socket> Socket::Accept(std::string* peer_ip, const Interrupt& intr) {
  for (;;) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      if (peer_ip) {
        char buf[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
        *peer_ip = buf;
      }
      SetNoDelay(fd);
      return Socket(fd);
    }
    int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) {
      // Out of descriptors or memory: wait a little rather than spin.
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        Status st = WaitFor(fd_, 0, Clock::now() + std::chrono::milliseconds(100), intr);
        if (st.code() == Code::kFailure) return st;
        continue;
      }
      return IoErr(err);
    }
    CM_RETURN_IF_ERROR(WaitFor(fd_, POLLIN, Clock::time_point::max(), intr));
  }
}

Result<size_t> Socket::ReadSome(char* buf, size_t n, Clock::time_point deadline, const Interrupt& intr) {
  for (;;) {
    if (intr.cancel && intr.cancel->load(std::memory_order_relaxed)) return Error(Code::kFailure, "cancelled");
    ssize_t r = ::recv(fd_, buf, n, 0);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return IoErr(errno);
    CM_RETURN_IF_ERROR(WaitFor(fd_, POLLIN, deadline, intr));
  }
}

Status Socket::WriteAll(std::string_view data, Clock::time_point deadline, const Interrupt& intr) {
  while (!data.empty()) {
    if (intr.cancel && intr.cancel->load(std::memory_order_relaxed)) return Error(Code::kFailure, "cancelled");
    ssize_t r = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (r >= 0) {
      data.remove_prefix(static_cast<size_t>(r));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return IoErr(errno);
    CM_RETURN_IF_ERROR(WaitFor(fd_, POLLOUT, deadline, intr));
  }
  return Status::Ok();
}

uint16_t Socket::local_port() const {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return 0;
  return ntohs(sa.sin_port);
}

}  // namespace cm::http
