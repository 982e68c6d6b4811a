#include "http/client.h"

#include <algorithm>
#include <cctype>
#include <vector>

#include "http/range.h"
#include "http/socket.h"

namespace cm::http {

namespace {

constexpr size_t kReadChunk = 64 << 10;
constexpr size_t kMaxErrorBody = 512;  // of a failed fetch's body, quoted in the message

std::string Ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

// "<url>: <what went wrong>", keeping the code.
Status At(const std::string& where, const Status& st, std::chrono::milliseconds timeout) {
  std::string what = IsTimeout(st) ? "timed out after " + Ms(timeout) : st.message();
  return Status(st.code(), where + ": " + what);
}

bool ValidTarget(std::string_view t) {
  if (t.empty() || t[0] != '/') return false;
  for (char c : t) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return false;
  }
  return true;
}

bool ValidHost(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') return false;
  }
  return true;
}

// One line for a message: control characters become spaces, long text is cut.
std::string OneLine(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace

Result<Url> ParseUrl(std::string_view s) {
  auto bad = [&](const std::string& why) { return Error(Code::kUsage, "bad URL '" + std::string(s) + "': " + why); };
  static constexpr std::string_view kScheme = "http://";
  if (s.size() < kScheme.size()) return bad("not http://");
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != kScheme[i]) return bad("only http:// is supported");
  }
  std::string_view rest = s.substr(kScheme.size());
  rest = rest.substr(0, rest.find('#'));  // a fragment is never sent
  size_t auth_end = rest.find_first_of("/?");
  std::string_view auth = rest.substr(0, auth_end);
  std::string_view target = auth_end == std::string_view::npos ? std::string_view() : rest.substr(auth_end);
  if (auth.find('@') != std::string_view::npos) return bad("user info is not supported");
  if (!auth.empty() && auth[0] == '[') return bad("IPv6 literals are not supported");
  Url url;
  size_t colon = auth.rfind(':');
  std::string_view host = auth.substr(0, colon);
  if (colon != std::string_view::npos) {
    std::string_view port = auth.substr(colon + 1);
    if (port.empty() || port.size() > 5) return bad("bad port");
    uint32_t p = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return bad("bad port");
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (p == 0 || p > 65535) return bad("port out of range");
    url.port = static_cast<uint16_t>(p);
  }
  if (!ValidHost(host)) return bad("bad host");
  url.host = std::string(host);
  url.target = target.empty() ? "/" : (target[0] == '?' ? "/" + std::string(target) : std::string(target));
  if (!ValidTarget(url.target)) return bad("bad characters in the path");
  return url;
}

const std::string* ClientResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? nullptr : &it->second;
}

// ---- Call ----------------------------------------------------------------------

namespace {

struct Exchanged {
  ClientResponse response;
  bool keep_alive = false;
};

// Sends `request` and reads one whole response. *got_any: whether any byte
// of an answer arrived (a request that failed before that may be retried on
// a new connection).
Result<Exchanged> Exchange(Socket& sock, const std::string& request, bool head, Clock::time_point deadline,
                           bool* got_any) {
  *got_any = false;
  // Even when sending fails the server may have answered already (a 413
  // before it read our body), so read whatever came back.
  Status sent = sock.WriteAll(request, deadline);
  Exchanged out;
  auto parser = std::make_unique<ResponseParser>(head, kMaxCallResponseBytes);
  auto sink = [&out](std::string_view b) {
    out.response.body.append(b);
    return true;
  };
  std::string in;
  std::vector<char> buf(kReadChunk);
  for (;;) {
    if (!in.empty()) {
      size_t used = 0;
      ParseStatus st = parser->Feed(in, &used, sink);
      in.erase(0, used);
      if (st == ParseStatus::kDone) {
        int status = parser->status();
        if (status >= 100 && status < 200 && status != 101) {  // interim (100 Continue): the answer follows
          parser = std::make_unique<ResponseParser>(head, kMaxCallResponseBytes);
          out.response.body.clear();
          continue;
        }
        break;
      }
      if (st == ParseStatus::kError) {
        if (parser->error() == ParseError::kBodyTooLarge) {
          return Error(Code::kFailure, "response body larger than " + std::to_string(kMaxCallResponseBytes) + " bytes");
        }
        return Error(Code::kFailure, "bad response: " + parser->error_message());
      }
      if (used > 0 && !in.empty()) continue;
    }
    auto r = sock.ReadSome(buf.data(), buf.size(), deadline);
    if (!r.ok()) return (!*got_any && !sent.ok()) ? sent : r.status();
    if (*r == 0) {
      if (parser->FeedEof(sink) == ParseStatus::kDone) break;
      if (!*got_any) return sent.ok() ? Error(Code::kIo, "connection closed before a response") : sent;
      return Error(Code::kIo, "connection closed inside the response");
    }
    *got_any = true;
    in.append(buf.data(), *r);
  }
  out.response.status = parser->status();
  out.response.headers = parser->headers();
  out.keep_alive = sent.ok() && in.empty() && parser->keep_alive();
  return out;
}

}  // namespace

struct Client::Impl {
  Socket sock;
  std::string key;  // host:port of the open connection
};

Client::Client() : impl_(std::make_unique<Impl>()) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

bool Client::connected() const { return impl_->sock.valid(); }
void Client::Close() { impl_->sock.Close(); }

Result<ClientResponse> Client::Call(const std::string& method, const std::string& url_text, const std::string& body,
                                    std::chrono::milliseconds timeout, const std::string& content_type,
                                    const HeaderList& extra_headers) {
  CM_ASSIGN_OR_RETURN(Url url, ParseUrl(url_text));
  const std::string where = url.ToString();
  if (!IsToken(method)) return Error(Code::kUsage, where + ": bad method '" + method + "'");
  HeaderList h = {{"Host", url.HostPort()}};
  if (!body.empty()) {
    if (!content_type.empty()) h.emplace_back("Content-Type", content_type);
    h.emplace_back("Content-Length", std::to_string(body.size()));
  } else if (method == "POST" || method == "PUT" || method == "PATCH") {
    h.emplace_back("Content-Length", "0");
  }
  for (const auto& [name, value] : extra_headers) {
    if (!IsValidHeader(name, value)) return Error(Code::kUsage, where + ": bad header '" + name + "'");
    h.emplace_back(name, value);
  }
  std::string request = FormatRequestHead(method, url.target, h);
  request += body;
  const auto deadline = Clock::now() + timeout;
  for (int attempt = 0;; ++attempt) {
    const bool reused = impl_->sock.valid() && impl_->key == url.HostPort();
    if (!reused) {
      impl_->sock.Close();
      auto s = Socket::Connect(url.host, url.port, deadline);
      if (!s.ok()) return At(where, s.status(), timeout);
      impl_->sock = std::move(s).value();
      impl_->key = url.HostPort();
    }
    bool got_any = false;
    auto r = Exchange(impl_->sock, request, method == "HEAD", deadline, &got_any);
    if (r.ok()) {
      if (!r->keep_alive) impl_->sock.Close();
      return std::move(r->response);
    }
    impl_->sock.Close();
    // A kept-alive connection the server has meanwhile closed fails at once
    // and without an answer: worth one retry on a fresh connection.
    if (reused && !got_any && attempt == 0 && !IsTimeout(r.status())) continue;
    return At(where, r.status(), timeout);
  }
}

Result<ClientResponse> Call(const std::string& method, const std::string& url, const std::string& body,
                            std::chrono::milliseconds timeout, const std::string& content_type,
                            const HeaderList& extra_headers) {
  Client c;
  return c.Call(method, url, body, timeout, content_type, extra_headers);
}

// ---- FetchRange ----------------------------------------------------------------

namespace {

// Checks a fetch's response header; returns the number of body bytes it
// announces (nullopt if not said). *http_error: the status itself is the
// failure (its body is then read for the message).
Result<std::optional<uint64_t>> CheckFetchHeader(const ResponseParser& p, uint64_t offset,
                                                 std::optional<uint64_t> end, const FetchOptions& opts,
                                                 bool* http_error) {
  *http_error = false;
  const int status = p.status();
  const HeaderMap headers = p.headers();
  if (status == 206) {
    auto it = headers.find("content-range");
    auto cr = it == headers.end() ? std::nullopt : ParseContentRange(it->second);
    if (!cr) return Error(Code::kFailure, "206 without a valid Content-Range");
    if (cr->range.first != offset || (end && cr->range.last > *end)) {
      return Error(Code::kFailure, "asked for " + FormatRange(offset, end) + ", got " + it->second);
    }
    if (p.content_length() && *p.content_length() != cr->range.length()) {
      return Error(Code::kFailure, "Content-Length " + std::to_string(*p.content_length()) +
                                       " does not match Content-Range " + it->second);
    }
    if (opts.resource_size) *opts.resource_size = cr->size;
    return std::optional<uint64_t>(cr->range.length());
  }
  if (status == 200) {
    // The whole resource: right only when that is what we asked for.
    bool whole_is_fine = offset == 0 && (!end || (p.content_length() && *p.content_length() <= *end + 1));
    if (!whole_is_fine) return Error(Code::kFailure, "the server ignored " + FormatRange(offset, end) + " (200)");
    if (opts.resource_size) *opts.resource_size = p.content_length();
    return p.content_length();
  }
  *http_error = true;
  return std::optional<uint64_t>();
}

}  // namespace

Status FetchRange(const std::string& url_text, uint64_t offset, std::optional<uint64_t> end_inclusive,
                  const std::function<Status(std::string_view bytes)>& sink, const FetchOptions& opts) {
  CM_ASSIGN_OR_RETURN(Url url, ParseUrl(url_text));
  const std::string where = url.ToString();
  if (end_inclusive && *end_inclusive < offset) {
    return Error(Code::kUsage, where + ": bad range " + FormatRange(offset, end_inclusive));
  }
  if (opts.resource_size) opts.resource_size->reset();
  const Interrupt intr{opts.cancel, -1};
  auto connected = Socket::Connect(url.host, url.port, Clock::now() + opts.connect_timeout, intr);
  if (!connected.ok()) {
    const Status& st = connected.status();
    return IsTimeout(st) ? Error(Code::kIo, where + ": timed out connecting after " + Ms(opts.connect_timeout))
                         : At(where, st, opts.connect_timeout);
  }
  Socket sock = std::move(connected).value();
  HeaderList h = {{"Host", url.HostPort()}, {"Range", FormatRange(offset, end_inclusive)}, {"Connection", "close"}};
  Status sent = sock.WriteAll(FormatRequestHead("GET", url.target, h), Clock::now() + opts.idle_timeout, intr);
  if (!sent.ok()) return At(where, sent, opts.idle_timeout);

  auto parser = std::make_unique<ResponseParser>(/*head_request=*/false, std::nullopt);
  bool checked = false, http_error = false;
  std::optional<uint64_t> expected;
  Status sink_status;
  std::string error_body;
  ResponseParser::BodySink body_sink = [&](std::string_view b) {
    if (http_error) {
      error_body.append(b.substr(0, kMaxErrorBody - std::min(kMaxErrorBody, error_body.size())));
      return error_body.size() < kMaxErrorBody;
    }
    sink_status = sink(b);
    return sink_status.ok();
  };
  auto http_failure = [&] {
    int status = parser->status();
    std::string msg = where + ": HTTP " + std::to_string(status) + " " + ReasonPhrase(status);
    if (!error_body.empty()) msg += ": " + OneLine(error_body, kMaxErrorBody);
    return Error(status == 404 ? Code::kNotFound : Code::kFailure, msg);
  };
  auto progress = [&] {
    std::string s = std::to_string(parser->body_bytes());
    if (expected) s += " of " + std::to_string(*expected);
    return s + " bytes";
  };

  std::string in;
  std::vector<char> buf(kReadChunk);
  for (;;) {
    ParseStatus st = ParseStatus::kNeedMore;
    if (!in.empty()) {
      size_t used = 0;
      st = parser->Feed(in, &used, body_sink);
      in.erase(0, used);
      if (st == ParseStatus::kError) {
        if (parser->error() == ParseError::kAborted) return http_error ? http_failure() : sink_status;
        return Error(Code::kFailure, where + ": bad response: " + parser->error_message());
      }
      if (st == ParseStatus::kDone && parser->status() >= 100 && parser->status() < 200) {
        parser = std::make_unique<ResponseParser>(false, std::nullopt);  // interim response
        continue;
      }
      if (parser->header_done() && !checked) {
        checked = true;
        auto c = CheckFetchHeader(*parser, offset, end_inclusive, opts, &http_error);
        if (!c.ok()) return Status(c.status().code(), where + ": " + c.status().message());
        expected = *c;
      }
      if (st == ParseStatus::kDone) return http_error ? http_failure() : Status::Ok();
      if (used > 0 && !in.empty()) continue;
    }
    auto r = sock.ReadSome(buf.data(), buf.size(), Clock::now() + opts.idle_timeout, intr);
    if (!r.ok()) {
      if (http_error) return http_failure();
      if (IsTimeout(r.status())) {
        return Error(Code::kIo, where + ": no data for " + Ms(opts.idle_timeout) + " (after " + progress() + ")");
      }
      return At(where, r.status(), opts.idle_timeout);
    }
    if (*r == 0) {
      // (The header was checked when Feed completed it, so `checked` holds.)
      if (parser->FeedEof(body_sink) == ParseStatus::kDone) return http_error ? http_failure() : Status::Ok();
      if (http_error) return http_failure();
      if (!parser->header_done()) return Error(Code::kIo, where + ": connection closed before a response");
      return Error(Code::kIo, where + ": connection closed after " + progress());
    }
    in.append(buf.data(), *r);
  }
}

}  // namespace cm::http
