// A small HTTP/1.1 client: JSON calls with a whole-body response, and range
// fetches that stream the body to a sink as it arrives, for transfers that
// resume where they stopped. Free of Asio and Beast (see socket.h, wire.h).
//
// Blocking calls on the calling thread. Timeouts are real: the sockets are
// non-blocking underneath and every wait is a poll() with a deadline (see
// socket.h), so a silent peer costs at most the timeout asked for.
//
// Errors are Status values whose message starts with the URL:
//   "http://1.2.3.4:7710/v1/fetch: connection refused"          (kIo)
//   "http://1.2.3.4:7710/v1/fetch: timed out after 5000 ms"       (kIo)
//   "http://.../v1/content/7: connection closed after 300 of 1000 bytes" (kIo)
// kIo means the transfer may be retried or resumed; kNotFound a 404 (from
// FetchRange); kUsage a bad URL; kFailure anything else (a bad response, an
// unexpected status, cancelled).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/wire.h"
#include "util/status.h"

namespace cm::http {

struct Url {
  std::string host;  // IPv4 literal or a name (resolved when connecting)
  uint16_t port = 80;
  std::string target = "/";  // path and query
  // "host:port", the Host header and the connection key.
  std::string HostPort() const { return host + ":" + std::to_string(port); }
  // "http://host:port/target"
  std::string ToString() const { return "http://" + HostPort() + target; }
};

// Parses "http://host[:port][/path[?query]]". Only http; no user info, no
// fragment, no IPv6 literals. kUsage on anything else.
Result<Url> ParseUrl(std::string_view url);

struct ClientResponse {
  int status = 0;
  HeaderMap headers;  // lower-case names
  std::string body;
  const std::string* header(const std::string& lower_name) const;
};

// The largest response body Call accepts (content goes through FetchRange).
inline constexpr uint64_t kMaxCallResponseBytes = 64 << 20;

// A client that keeps its connection open between calls to the same
// host:port (HTTP keep-alive) and reconnects when needed. One call at a time:
// not thread-safe; use one Client per thread.
class Client {
 public:
  Client();
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  // Sends one request and reads the whole response. `timeout` bounds the
  // whole call (connect, send, receive). Any HTTP status is a success here:
  // the caller looks at `status`. A request that fails on a reused
  // connection before any byte of the answer is retried once on a new one
  // (the server may have closed the idle connection). content_type is sent
  // when `body` is non-empty; extra headers must be valid (kUsage if not).
  Result<ClientResponse> Call(const std::string& method, const std::string& url, const std::string& body,
                              std::chrono::milliseconds timeout,
                              const std::string& content_type = "application/json",
                              const HeaderList& extra_headers = {});

  // Whether a connection is open (for tests).
  bool connected() const;
  // Closes the connection, if any.
  void Close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One call on a fresh connection (closed afterwards).
Result<ClientResponse> Call(const std::string& method, const std::string& url, const std::string& body,
                            std::chrono::milliseconds timeout, const std::string& content_type = "application/json",
                            const HeaderList& extra_headers = {});

struct FetchOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  // The longest wait for the header and for each further piece of the body
  // ("no byte for this long" fails with kIo).
  std::chrono::milliseconds idle_timeout{30'000};
  // Checked at least every 50 ms while waiting and between reads; when set
  // the fetch stops with kFailure "cancelled".
  const std::atomic<bool>* cancel = nullptr;
  // When non-null, receives the resource's total size once the header has
  // arrived (from Content-Range; for a 200, the Content-Length), if known.
  std::optional<uint64_t>* resource_size = nullptr;
};

// GETs bytes offset..end_inclusive (or offset..the end when nullopt) of url
// with a Range header and passes them to `sink` in order as they arrive.
// Bytes are delivered only after the header has been checked: a 206 whose
// Content-Range starts at `offset` (and ends no later than end_inclusive), or
// a 200 when offset is 0 and no end was asked for (the whole resource).
// Returns ok once the whole response body has been delivered (it may hold
// fewer bytes than asked for when the resource is shorter). Otherwise:
//   - the sink's own error, when it returns one (the fetch stops);
//   - kIo when the connection fails, closes early (a short body) or stays
//     silent past idle_timeout: count the bytes the sink got, and resume
//     with offset + that count;
//   - kNotFound for 404; kFailure for other statuses (416 included), a
//     Content-Range that does not match the request, or a cancel.
// One connection per fetch, closed at the end.
Status FetchRange(const std::string& url, uint64_t offset, std::optional<uint64_t> end_inclusive,
                  const std::function<Status(std::string_view bytes)>& sink, const FetchOptions& options = {});

}  // namespace cm::http
