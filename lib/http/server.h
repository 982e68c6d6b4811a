// A small HTTP/1.1 server: one thread per connection (capped: see
// ServerOptions), keep-alive, request
// bodies up to a limit, and responses either from a string or streamed from
// a BodySource with byte ranges, which is how a relay serves an assignment
// that is still arriving. Free of Asio and Beast (see socket.h, wire.h).
//
// Timeouts: a request header must arrive whole within header_timeout; apart
// from that a connection waits at most idle_timeout for each step of
// progress (the next request, more bytes of one, the peer taking the bytes
// we write, a BodySource yielding more); then it is closed. Closing in the
// middle of a streamed body is how a stalled transfer ends: the client sees
// fewer bytes than Content-Length promised and resumes with a new Range.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "http/range.h"
#include "http/wire.h"
#include "util/status.h"

namespace cm::http {

struct Request {
  std::string method;  // as sent: "GET", "HEAD", "POST", ...
  std::string target;  // path and query, as sent: "/v1/content/7?x=1"
  std::string body;
  std::string peer_ip;  // dotted IPv4
  HeaderMap headers;    // lower-case names

  // The path without the query.
  std::string path() const;
  // nullptr when absent; name in lower case.
  const std::string* header(const std::string& name) const;
  // The Range header interpreted against a resource of `size` bytes.
  RangeRequest range(uint64_t size) const;
};

// A resource whose bytes may still be arriving (a relay's copy of an
// assignment being received). Read may be called from several connection
// threads at once, for different offsets; implementations must be
// thread-safe.
class BodySource {
 public:
  virtual ~BodySource() = default;
  // The total length of the resource in bytes, known in advance; the
  // server promises ranges against it.
  virtual uint64_t size() const = 0;
  // Copies bytes at `offset` (< size()) into `out` (non-empty), waiting until
  // at least one is available or `deadline` passes. Returns how many were
  // copied (<= out.size()); 0 = the deadline passed with nothing new (the
  // server asks again until its idle limit); an error = give up (the server
  // closes the connection). The server passes deadlines at most
  // kSourcePollInterval ahead so that Stop() is prompt; an implementation
  // must not wait past the deadline.
  virtual Result<size_t> Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point deadline) = 0;
};

// All of a string, available at once.
class StringSource : public BodySource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  Result<size_t> Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point deadline) override;

 private:
  std::string data_;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";  // empty: no Content-Type header
  std::string body;
  // Extra headers. Content-Length, Transfer-Encoding and Connection are the
  // server's and are dropped here, as are headers that are not valid
  // (IsValidHeader).
  std::vector<std::pair<std::string, std::string>> headers;
  // When set, the body comes from the stream and `body` is ignored. For a
  // GET or HEAD answered with status 200, the request's Range applies: 206
  // with Content-Range and a Content-Length for the whole range, or 416 when
  // unsatisfiable; "Accept-Ranges: bytes" is sent. For a HEAD the server
  // sends the headers only (Content-Length = the size or range length).
  std::shared_ptr<BodySource> stream;

  // A JSON (or text) response: Response::Json(404, R"({"error":"no such job"})").
  static Response Json(int status, std::string body);
  static Response Text(int status, std::string body);
};

// Called for every request, from the connection's thread: handlers run
// concurrently when several connections are open, so whatever they share
// must be synchronized. A handler should return promptly (Stop waits for
// it); an exception it throws becomes a 500 and is otherwise contained.
// The method is passed as sent: a handler that serves GET should treat HEAD
// the same way (the server drops the body of a HEAD response).
using Handler = std::function<Response(const Request&)>;

// Limits that bound what any client (an outsider included) can make the
// server hold: a thread and a descriptor per open connection, at most
// max_connections of them, at most max_connections_per_peer for one peer
// address; a request header must arrive whole within header_timeout; a
// connection silent for idle_timeout is closed; a request body is at most
// max_body_bytes. A connection over a cap is closed at once (a 503 is sent
// without waiting, so a client that reads before it writes may see it): it
// is never queued and costs no thread.
struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // "ip:port"; ip 0.0.0.0 for all interfaces; port 0 for any free port
  int max_connections = 512;           // open connections in all
  int max_connections_per_peer = 64;   // open connections from one peer IP address
  // From the connection's start (for its first request) or from the first
  // byte of a later request until the end of its header; then 408 and close.
  std::chrono::milliseconds header_timeout{10'000};
  // Keep-alive: the longest wait for the next request; within a request or a
  // response, the longest wait for each step of progress (see above).
  std::chrono::milliseconds idle_timeout{30'000};
  size_t max_header_bytes = 16 << 10;   // larger request headers: 431
  uint64_t max_body_bytes = 1 << 20;    // larger request bodies: 413
  // Optional, per route: the body limit for a request with this method and
  // path (no query), called once its header is in. It can only lower
  // max_body_bytes (a larger value is treated as max_body_bytes). Called from
  // connection threads; must be thread-safe and must not block.
  std::function<uint64_t(const std::string& method, const std::string& path)> body_limit;
};

// How long the server lets one BodySource::Read wait before checking for Stop.
inline constexpr std::chrono::milliseconds kSourcePollInterval{100};

struct ServerStats {
  uint64_t connections_accepted = 0;  // including those refused
  uint64_t connections_refused = 0;   // closed at once: over a connection cap
  uint64_t header_timeouts = 0;       // closed: no whole request header within header_timeout
  uint64_t requests = 0;              // requests handed to the handler
  int open_connections = 0;           // each holds one thread and one descriptor
};

class Server {
 public:
  // Binds, listens and starts accepting on a thread of its own. Errors: kUsage
  // for a bad listen address, kIo when the bind fails.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (the real one when options.listen asked for port 0).
  uint16_t port() const;
  // "127.0.0.1:7710": the listen ip with the bound port.
  std::string address() const;
  ServerStats stats() const;

  // Closes the listening socket and every connection (mid-stream ones too),
  // and joins all threads; returns once no handler runs. Idempotent; safe to
  // call from any thread except a handler's.
  void Stop();

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Splits "ip:port" (port 0-65535). kUsage on anything else.
Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s);

// The value of `key` in a request target's query ("/p?a=1&b=2", "b" -> "2");
// "" when absent. Values are taken as they are (no percent-decoding).
std::string QueryParam(const std::string& target, const std::string& key);

}  // namespace cm::http
