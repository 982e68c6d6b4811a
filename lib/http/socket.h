// TCP sockets with deadlines for the HTTP server and client. Plain POSIX, no
// Asio: every descriptor is non-blocking underneath and each operation waits
// in poll() until it can make progress, its deadline passes, a cancel flag is
// raised, or a wake descriptor becomes readable (how Server::Stop wakes every
// connection thread at once). This gives the synchronous, thread-per-
// connection code real timeouts, which Asio's synchronous calls lack
// (SO_RCVTIMEO is defeated by their internal poll).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace cm::http {

using Clock = std::chrono::steady_clock;

// What may end a wait before its deadline. Both are optional.
struct Interrupt {
  // Checked before each operation and at least every kInterruptPoll while
  // waiting; when true the operation fails with kFailure "cancelled".
  const std::atomic<bool>* cancel = nullptr;
  // A descriptor that becomes readable (and stays so: an eventfd that is
  // never drained) to wake every waiter; then kFailure "stopped".
  int wake_fd = -1;
};
inline constexpr std::chrono::milliseconds kInterruptPoll{50};

// The message of every deadline failure (Code::kIo), so callers can tell a
// timeout from other errors and word their own message.
inline constexpr std::string_view kTimedOut = "timed out";
bool IsTimeout(const Status& st);

// Owns one socket descriptor. Move-only. Not thread-safe, except Shutdown().
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket();
  Socket(Socket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  bool valid() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Connects to host:port; host is an IPv4 literal or a name (resolved with
  // getaddrinfo, IPv4 only, without a timeout of its own). Errors, kIo:
  // "connection refused", "timed out", "cannot resolve host 'x': ...", or
  // the errno text; kFailure "cancelled"/"stopped".
  static Result<Socket> Connect(const std::string& host, uint16_t port, Clock::time_point deadline,
                                const Interrupt& intr = {});
  // Binds ip:port (ip an IPv4 literal; "0.0.0.0" for any; port 0 for any
  // free port) with SO_REUSEADDR and listens.
  static Result<Socket> Listen(const std::string& ip, uint16_t port, int backlog = 128);

  // Waits for the next connection on a listening socket. *peer_ip receives
  // the peer's dotted address. Fails with kFailure "stopped" when woken.
  Result<Socket> Accept(std::string* peer_ip, const Interrupt& intr);

  // Reads up to n (> 0) bytes, waiting until at least one arrives. Returns 0
  // when the peer has closed its side.
  Result<size_t> ReadSome(char* buf, size_t n, Clock::time_point deadline, const Interrupt& intr = {});
  // Writes all of data (never raises SIGPIPE); the deadline bounds the whole.
  Status WriteAll(std::string_view data, Clock::time_point deadline, const Interrupt& intr = {});

  // shutdown(2) in both directions: blocked or later operations on this
  // socket (from any thread) fail or see end of stream; the descriptor stays
  // open until Close or destruction.
  void Shutdown();
  // Half-close: we send no more; reading still works.
  void ShutdownWrite();
  void Close();

  uint16_t local_port() const;

 private:
  int fd_ = -1;
};

// Lower-case errno text: "connection refused".
std::string ErrnoText(int err);

}  // namespace cm::http
