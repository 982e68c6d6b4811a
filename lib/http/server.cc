#include "http/server.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>

#include "http/socket.h"
#include "util/json.h"
#include "util/log.h"

namespace cm::http {

// ---- Small types -------------------------------------------------------------

std::string Request::path() const { return target.substr(0, target.find('?')); }

const std::string* Request::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? nullptr : &it->second;
}

RangeRequest Request::range(uint64_t size) const {
  const std::string* h = header("range");
  return ParseRange(h ? *h : std::string_view(), size);
}

Result<size_t> StringSource::Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point) {
  if (offset >= data_.size()) return Error(Code::kFailure, "read past the end of the resource");
  size_t n = std::min<uint64_t>(out.size(), data_.size() - offset);
  std::memcpy(out.data(), data_.data() + offset, n);
  return n;
}

Response Response::Json(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response Response::Text(int status, std::string body) {
  Response r = Json(status, std::move(body));
  r.content_type = "text/plain; charset=utf-8";
  return r;
}

Result<std::pair<std::string, uint16_t>> ParseHostPort(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size() || s.size() - colon - 1 > 5) {
    return Error(Code::kUsage, "not ip:port: '" + s + "'");
  }
  uint32_t port = 0;
  for (size_t i = colon + 1; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return Error(Code::kUsage, "not ip:port: '" + s + "'");
    port = port * 10 + static_cast<uint32_t>(s[i] - '0');
  }
  if (port > 65535) return Error(Code::kUsage, "port out of range: '" + s + "'");
  return std::make_pair(s.substr(0, colon), static_cast<uint16_t>(port));
}

// ---- Server --------------------------------------------------------------------

namespace {

constexpr size_t kReadChunk = 64 << 10;
constexpr size_t kStreamChunk = 256 << 10;
// How long a closing connection keeps reading (and dropping) what the peer
// still sends, so that our last response is not destroyed by a reset.
constexpr std::chrono::milliseconds kLinger{300};
constexpr uint64_t kLingerMaxBytes = 64 << 20;
// Sent, without waiting, to a connection over a cap before it is closed.
constexpr std::string_view kRefusal =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 33\r\n"
    "Connection: close\r\n\r\n{\"error\":\"too many connections\"}";

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string ErrorBody(std::string_view message) { return JsonObject().Str("error", message).Build(); }

}  // namespace

struct Conn {
  Socket sock;
  std::string peer_ip;
  Clock::time_point accepted;
  std::thread thread;
  std::atomic<bool> finished{false};
};

struct Server::Impl {
  ServerOptions opts;
  Handler handler;
  std::string ip;
  uint16_t port = 0;
  Socket listener;
  int wake_fd = -1;  // an eventfd written once by Stop and never drained
  std::atomic<bool> stopping{false};
  std::thread acceptor;

  std::mutex stop_mu;
  bool stopped = false;

  mutable std::mutex mu;  // guards conns, stats, per_peer
  std::list<std::unique_ptr<Conn>> conns;
  ServerStats stats;
  std::map<std::string, int> per_peer;  // open connections by peer ip (entries > 0 only)

  ~Impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  Interrupt intr() const { return {nullptr, wake_fd}; }
  Clock::time_point IdleDeadline() const { return Clock::now() + opts.idle_timeout; }

  void AcceptLoop();
  void Reap();
  void Serve(Conn* c);
  void ServeRequests(Conn* c);
  Response CallHandler(const Request& req);
  bool Send(Conn* c, std::string_view data);
  void SendErrorAndClose(Conn* c, int status, const std::string& message);
  void LingerClose(Conn* c);
  bool WriteResponse(Conn* c, const Request& req, Response& res, bool keep_alive, unsigned version);
  bool WriteStream(Conn* c, BodySource& src, uint64_t first, uint64_t length);
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler) {
  if (!handler) return Error(Code::kUsage, "http server: no handler");
  CM_ASSIGN_OR_RETURN(auto hp, ParseHostPort(options.listen));
  auto impl = std::make_unique<Impl>();
  impl->opts = options;
  impl->opts.max_connections = std::max(1, options.max_connections);
  impl->opts.max_connections_per_peer = std::max(1, options.max_connections_per_peer);
  impl->handler = std::move(handler);
  impl->ip = hp.first;
  CM_ASSIGN_OR_RETURN(impl->listener, Socket::Listen(hp.first, hp.second));
  impl->port = impl->listener.local_port();
  impl->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wake_fd < 0) return Error(Code::kIo, "eventfd: " + ErrnoText(errno));
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] { raw->AcceptLoop(); });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

uint16_t Server::port() const { return impl_->port; }

std::string Server::address() const { return impl_->ip + ":" + std::to_string(impl_->port); }

ServerStats Server::stats() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->stats;
}

void Server::Stop() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> g(s.stop_mu);
  if (s.stopped) return;
  s.stopped = true;
  s.stopping = true;
  uint64_t one = 1;
  if (::write(s.wake_fd, &one, sizeof one) != sizeof one) {
    log::Warn("http server: cannot wake connection threads: " + ErrnoText(errno));
  }
  if (s.acceptor.joinable()) s.acceptor.join();
  s.listener.Close();
  std::list<std::unique_ptr<Conn>> conns;
  {
    // Under the lock: a finishing thread closes its socket under it too, so
    // this never touches a descriptor number that has been reused.
    std::lock_guard<std::mutex> lock(s.mu);
    for (auto& c : s.conns) c->sock.Shutdown();
    conns.swap(s.conns);
  }
  for (auto& c : conns) {
    if (c->thread.joinable()) c->thread.join();
  }
}

void Server::Impl::Reap() {
  std::list<std::unique_ptr<Conn>> done;
  {
    std::lock_guard<std::mutex> g(mu);
    for (auto it = conns.begin(); it != conns.end();) {
      auto next = std::next(it);
      if ((*it)->finished) done.splice(done.end(), conns, it);
      it = next;
    }
  }
  for (auto& c : done) {
    if (c->thread.joinable()) c->thread.join();
  }
}

void Server::Impl::AcceptLoop() {
  while (!stopping) {
    std::string peer;
    auto s = listener.Accept(&peer, intr());
    if (!s.ok()) {
      if (stopping || s.status().code() == Code::kFailure) break;
      log::Warn("http server " + ip + ":" + std::to_string(port) + ": accept: " + s.status().message());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    Reap();
    {
      std::lock_guard<std::mutex> g(mu);
      ++stats.connections_accepted;
      auto it = per_peer.find(peer);
      const int from_peer = it == per_peer.end() ? 0 : it->second;
      if (stats.open_connections >= opts.max_connections || from_peer >= opts.max_connections_per_peer) {
        ++stats.connections_refused;
        (void)s->WriteAll(kRefusal, Clock::now());  // only what fits at once: never wait for a refused peer
        continue;                             // the socket closes here
      }
      ++stats.open_connections;
      ++per_peer[peer];
    }
    auto c = std::make_unique<Conn>();
    c->sock = std::move(s).value();
    c->peer_ip = std::move(peer);
    c->accepted = Clock::now();
    Conn* raw = c.get();
    {
      std::lock_guard<std::mutex> g(mu);
      conns.push_back(std::move(c));
    }
    auto finish = [this, raw] {
      std::lock_guard<std::mutex> g(mu);
      raw->sock.Close();
      --stats.open_connections;
      if (auto it = per_peer.find(raw->peer_ip); it != per_peer.end() && --it->second <= 0) per_peer.erase(it);
      raw->finished = true;
    };
    try {
      raw->thread = std::thread([this, raw, finish] {
        Serve(raw);
        finish();
      });
    } catch (const std::system_error& e) {  // out of threads: drop this connection
      log::Warn("http server: cannot start a connection thread: " + std::string(e.what()));
      finish();
    }
  }
}

void Server::Impl::Serve(Conn* c) {
  // Handlers and sources are caught individually; this catches bugs (such
  // as std::bad_alloc) so that one connection cannot end the process.
  try {
    ServeRequests(c);
  } catch (const std::exception& e) {
    log::Error("http server: connection from " + c->peer_ip + ": " + e.what());
  } catch (...) {
    log::Error("http server: connection from " + c->peer_ip + ": unknown exception");
  }
}

bool Server::Impl::Send(Conn* c, std::string_view data) {
  // The idle limit applies to each piece, not to the whole: a slow reader
  // that keeps taking bytes is not cut off.
  while (!data.empty()) {
    size_t n = std::min(data.size(), kStreamChunk);
    Status st = c->sock.WriteAll(data.substr(0, n), IdleDeadline(), intr());
    if (!st.ok()) {
      log::Debug("http server: writing to " + c->peer_ip + ": " + st.message());
      return false;
    }
    data.remove_prefix(n);
  }
  return true;
}

void Server::Impl::LingerClose(Conn* c) {
  c->sock.ShutdownWrite();
  auto deadline = Clock::now() + kLinger;
  std::vector<char> buf(kReadChunk);
  uint64_t total = 0;
  while (total < kLingerMaxBytes) {
    auto r = c->sock.ReadSome(buf.data(), buf.size(), deadline, intr());
    if (!r.ok() || *r == 0) break;
    total += *r;
  }
}

void Server::Impl::SendErrorAndClose(Conn* c, int status, const std::string& message) {
  std::string body = ErrorBody(message);
  HeaderList h = {{"Content-Type", "application/json"},
                  {"Content-Length", std::to_string(body.size())},
                  {"Connection", "close"}};
  if (Send(c, FormatResponseHead(status, h) + body)) LingerClose(c);
}

Response Server::Impl::CallHandler(const Request& req) {
  try {
    return handler(req);
  } catch (const std::exception& e) {
    log::Error("http server: handler for " + req.method + " " + req.target + " threw: " + e.what());
  } catch (...) {
    log::Error("http server: handler for " + req.method + " " + req.target + " threw");
  }
  return Response::Json(500, ErrorBody("internal error"));
}

void Server::Impl::ServeRequests(Conn* c) {
  std::string in;  // received and not yet parsed (pipelined requests)
  std::vector<char> buf(kReadChunk);
  bool first_request = true;
  while (!stopping) {
    RequestParser p(opts.max_header_bytes, opts.max_body_bytes);
    bool fed = false, sent_continue = false, limited = false;
    // The whole header within header_timeout: of the connection's start for
    // its first request, else of the request's first byte (before which the
    // keep-alive wait is idle_timeout).
    std::optional<Clock::time_point> header_deadline;
    if (first_request) header_deadline = c->accepted + opts.header_timeout;
    first_request = false;
    ParseStatus st = ParseStatus::kNeedMore;
    for (;;) {
      if (!in.empty()) {
        if (!header_deadline) header_deadline = Clock::now() + opts.header_timeout;
        size_t used = 0;
        st = p.Feed(in, &used);
        in.erase(0, used);
        fed = true;
        if (st == ParseStatus::kNeedMore && p.header_done() && !limited) {
          limited = true;
          if (opts.body_limit) {
            std::string target = p.target();
            uint64_t limit = opts.body_limit(p.method(), target.substr(0, target.find('?')));
            if (!p.LowerBodyLimit(limit)) {
              SendErrorAndClose(c, 413, "request body larger than " + std::to_string(limit) + " bytes");
              return;
            }
          }
        }
        if (st != ParseStatus::kNeedMore) break;
        if (p.header_done() && p.expects_continue() && !sent_continue) {
          sent_continue = true;
          if (!Send(c, "HTTP/1.1 100 Continue\r\n\r\n")) return;
        }
        if (used > 0 && !in.empty()) continue;  // the header is done; the body follows in `in`
      }
      Clock::time_point deadline = IdleDeadline();
      const bool in_header = !p.header_done() && header_deadline;
      if (in_header) deadline = std::min(deadline, *header_deadline);
      auto r = c->sock.ReadSome(buf.data(), buf.size(), deadline, intr());
      if (!r.ok()) {
        // Idle between or inside requests, stopped, or reset.
        if (in_header && IsTimeout(r.status()) && Clock::now() >= *header_deadline) {
          {
            std::lock_guard<std::mutex> g(mu);
            ++stats.header_timeouts;
          }
          log::Debug("http server: no request header from " + c->peer_ip + " within " +
                     std::to_string(opts.header_timeout.count()) + " ms: closing the connection");
          if (fed) SendErrorAndClose(c, 408, "request header not received within " +
                                                 std::to_string(opts.header_timeout.count()) + " ms");
        }
        return;
      }
      if (*r == 0) {
        if (!fed) return;  // closed between requests: the normal end
        st = p.FeedEof();
        break;
      }
      in.append(buf.data(), *r);
    }
    if (st == ParseStatus::kError) {
      switch (p.error()) {
        case ParseError::kTruncated:
          return;  // the peer has gone
        case ParseError::kBodyTooLarge:
          SendErrorAndClose(c, 413, "request body larger than " + std::to_string(opts.max_body_bytes) + " bytes");
          return;
        case ParseError::kHeaderTooLarge:
          SendErrorAndClose(c, 431, "request header larger than " + std::to_string(opts.max_header_bytes) + " bytes");
          return;
        default:
          SendErrorAndClose(c, 400, "bad request: " + p.error_message());
          return;
      }
    }
    Request req;
    req.method = p.method();
    req.target = p.target();
    req.headers = p.headers();
    req.body = p.TakeBody();
    req.peer_ip = c->peer_ip;
    {
      std::lock_guard<std::mutex> g(mu);
      ++stats.requests;
    }
    Response res = CallHandler(req);
    bool keep_alive = p.keep_alive() && !stopping;
    if (!WriteResponse(c, req, res, keep_alive, p.version())) return;
    if (!keep_alive) {
      LingerClose(c);
      return;
    }
  }
}

bool Server::Impl::WriteResponse(Conn* c, const Request& req, Response& res, bool keep_alive, unsigned version) {
  if (res.status < 200 || res.status > 599) {
    log::Error("http server: handler for " + req.target + " returned status " + std::to_string(res.status));
    res = Response::Json(500, ErrorBody("internal error"));
  }
  const bool head = req.method == "HEAD";
  HeaderList h;
  if (!res.content_type.empty() && IsValidHeader("Content-Type", res.content_type)) {
    h.emplace_back("Content-Type", res.content_type);
  }
  for (auto& [name, value] : res.headers) {
    std::string lower = Lower(name);
    if (lower == "content-length" || lower == "transfer-encoding" || lower == "connection" ||
        lower == "content-type") {
      continue;
    }
    if (!IsValidHeader(name, value)) {
      log::Debug("http server: dropping invalid response header '" + name + "'");
      continue;
    }
    h.emplace_back(name, value);
  }
  if (!keep_alive) {
    h.emplace_back("Connection", "close");
  } else if (version < 11) {
    h.emplace_back("Connection", "keep-alive");
  }

  if (!res.stream) {
    const bool no_body = res.status == 204 || res.status == 304;
    if (!no_body) h.emplace_back("Content-Length", std::to_string(res.body.size()));
    std::string out = FormatResponseHead(res.status, h);
    if (head || no_body) return Send(c, out);
    if (res.body.size() <= kReadChunk) return Send(c, out + res.body);
    return Send(c, out) && Send(c, res.body);
  }

  BodySource& src = *res.stream;
  const uint64_t size = src.size();
  int status = res.status;
  uint64_t first = 0, length = size;
  h.emplace_back("Accept-Ranges", "bytes");
  if (status == 200 && (head || req.method == "GET")) {
    RangeRequest rr = req.range(size);
    if (rr.kind == RangeRequest::Kind::kUnsatisfiable) {
      h.emplace_back("Content-Range", FormatUnsatisfiedRange(size));
      h.emplace_back("Content-Length", "0");
      return Send(c, FormatResponseHead(416, h));
    }
    if (rr.kind == RangeRequest::Kind::kRange) {
      status = 206;
      first = rr.range.first;
      length = rr.range.length();
      h.emplace_back("Content-Range", FormatContentRange(rr.range, size));
    }
  }
  h.emplace_back("Content-Length", std::to_string(length));
  if (!Send(c, FormatResponseHead(status, h))) return false;
  if (head || length == 0) return true;
  return WriteStream(c, src, first, length);
}

bool Server::Impl::WriteStream(Conn* c, BodySource& src, uint64_t first, uint64_t length) {
  std::vector<char> buf(kStreamChunk);
  uint64_t pos = first;
  const uint64_t end = first + length;
  auto idle_deadline = IdleDeadline();
  while (pos < end) {
    if (stopping) return false;
    auto now = Clock::now();
    if (now >= idle_deadline) {
      log::Debug("http server: source idle at byte " + std::to_string(pos) + " for " + c->peer_ip +
                 ": closing the connection");
      return false;
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), end - pos));
    Result<size_t> r = Error(Code::kFailure, "");
    try {
      r = src.Read(pos, std::span<char>(buf.data(), want), std::min(now + kSourcePollInterval, idle_deadline));
    } catch (const std::exception& e) {
      r = Error(Code::kFailure, std::string("source threw: ") + e.what());
    }
    if (!r.ok()) {
      log::Debug("http server: source failed at byte " + std::to_string(pos) + ": " + r.status().message());
      return false;
    }
    if (*r == 0) continue;
    if (*r > want) {
      log::Error("http server: BodySource::Read returned more than asked");
      return false;
    }
    if (!Send(c, std::string_view(buf.data(), *r))) return false;
    pos += *r;
    idle_deadline = IdleDeadline();
  }
  return true;
}

std::string QueryParam(const std::string& target, const std::string& key) {
  size_t q = target.find('?');
  while (q != std::string::npos) {
    size_t begin = q + 1, end = target.find('&', begin);
    std::string pair = target.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (pair.rfind(key + "=", 0) == 0) return pair.substr(key.size() + 1);
    q = end;
  }
  return {};
}

}  // namespace cm::http
