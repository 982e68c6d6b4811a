// The one translation unit that includes Boost.Beast (only its parser: no
// Asio streams, so it compiles in a fraction of the time of beast.hpp).
#include "http/wire.h"

// GCC 12 with -fsanitize reports a false -Wmaybe-uninitialized inside
// basic_parser::content_length_unchecked (a boost::optional returned as
// none); it is in Beast, not here, and would fail -Werror builds.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>

namespace cm::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

constexpr size_t kScratch = 64 << 10;

template <class Message>
HeaderMap CollectHeaders(const Message& m) {
  HeaderMap out;
  for (const auto& f : m) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value(f.value());
    auto [it, fresh] = out.emplace(std::move(name), value);
    if (!fresh) it->second += ", " + value;
  }
  return out;
}

ParseError Classify(const beast::error_code& ec) {
  if (ec == bhttp::error::body_limit) return ParseError::kBodyTooLarge;
  if (ec == bhttp::error::header_limit) return ParseError::kHeaderTooLarge;
  if (ec == bhttp::error::partial_message || ec == bhttp::error::end_of_stream) return ParseError::kTruncated;
  return ParseError::kBad;
}

}  // namespace

// ---- RequestParser ---------------------------------------------------------

struct RequestParser::Impl {
  bhttp::request_parser<bhttp::string_body> p;
};

RequestParser::RequestParser(size_t header_limit, uint64_t body_limit) : impl_(std::make_unique<Impl>()) {
  impl_->p.header_limit(static_cast<std::uint32_t>(std::min<size_t>(header_limit, UINT32_MAX)));
  impl_->p.body_limit(body_limit);
  body_limit_ = body_limit;
}

RequestParser::~RequestParser() = default;

ParseStatus RequestParser::Feed(std::string_view in, size_t* consumed) {
  *consumed = 0;
  if (error_ != ParseError::kNone) return ParseStatus::kError;
  auto& p = impl_->p;
  const bool header_was_done = p.is_header_done();
  for (;;) {
    if (p.is_done()) return ParseStatus::kDone;
    if (*consumed == in.size()) return ParseStatus::kNeedMore;
    beast::error_code ec;
    size_t n = p.put(boost::asio::const_buffer(in.data() + *consumed, in.size() - *consumed), ec);
    *consumed += n;
    if (ec == bhttp::error::need_more) return ParseStatus::kNeedMore;
    if (ec) {
      error_ = Classify(ec);
      error_message_ = ec.message();
      return ParseStatus::kError;
    }
    if (p.is_done()) return ParseStatus::kDone;
    if (!header_was_done && p.is_header_done()) return ParseStatus::kNeedMore;
    if (n == 0) return ParseStatus::kNeedMore;
  }
}

ParseStatus RequestParser::FeedEof() {
  if (error_ != ParseError::kNone) return ParseStatus::kError;
  if (impl_->p.is_done()) return ParseStatus::kDone;
  beast::error_code ec;
  if (impl_->p.got_some()) impl_->p.put_eof(ec);  // put_eof requires some input
  if (!ec && impl_->p.is_done()) return ParseStatus::kDone;
  error_ = ParseError::kTruncated;
  error_message_ = ec ? ec.message() : "end of stream inside a request";
  return ParseStatus::kError;
}

bool RequestParser::header_done() const { return impl_->p.is_header_done(); }
std::string RequestParser::method() const { return std::string(impl_->p.get().method_string()); }
std::string RequestParser::target() const { return std::string(impl_->p.get().target()); }
HeaderMap RequestParser::headers() const { return CollectHeaders(impl_->p.get()); }
unsigned RequestParser::version() const { return impl_->p.get().version(); }
bool RequestParser::keep_alive() const { return impl_->p.keep_alive(); }

bool RequestParser::expects_continue() const {
  auto it = impl_->p.get().find(bhttp::field::expect);
  if (it == impl_->p.get().end()) return false;
  return beast::iequals(it->value(), "100-continue");
}

bool RequestParser::LowerBodyLimit(uint64_t limit) {
  auto& p = impl_->p;
  if (!p.is_header_done() || error_ != ParseError::kNone) return error_ == ParseError::kNone;
  if (limit >= body_limit_) return true;
  if (auto len = p.content_length(); len && *len > limit) {
    error_ = ParseError::kBodyTooLarge;
    error_message_ = "body limit exceeded";
    return false;
  }
  body_limit_ = limit;
  p.body_limit(limit);  // chunked bodies: checked as the chunks arrive
  return true;
}

std::string RequestParser::TakeBody() { return std::move(impl_->p.get().body()); }

// ---- ResponseParser --------------------------------------------------------

struct ResponseParser::Impl {
  bhttp::response_parser<bhttp::buffer_body> p;
  std::unique_ptr<char[]> scratch = std::make_unique<char[]>(kScratch);
};

ResponseParser::ResponseParser(bool head_request, std::optional<uint64_t> body_limit, size_t header_limit)
    : impl_(std::make_unique<Impl>()) {
  auto& p = impl_->p;
  p.header_limit(static_cast<std::uint32_t>(std::min<size_t>(header_limit, UINT32_MAX)));
  // Not boost::none for "no limit": Beast 1.74 compares `len > body_limit_`
  // with an optional, which is true against none, so every Content-Length
  // would fail.
  p.body_limit(body_limit.value_or(UINT64_MAX));
  p.skip(head_request);
}

ResponseParser::~ResponseParser() = default;

ParseStatus ResponseParser::Fail(ParseError e, std::string message) {
  error_ = e;
  error_message_ = std::move(message);
  return ParseStatus::kError;
}

ParseStatus ResponseParser::Feed(std::string_view in, size_t* consumed, const BodySink& sink) {
  *consumed = 0;
  if (error_ != ParseError::kNone) return ParseStatus::kError;
  auto& p = impl_->p;
  const bool header_was_done = p.is_header_done();
  for (;;) {
    if (p.is_done()) return ParseStatus::kDone;
    if (*consumed == in.size()) return ParseStatus::kNeedMore;
    auto& body = p.get().body();
    body.data = impl_->scratch.get();
    body.size = kScratch;
    beast::error_code ec;
    size_t n = p.put(boost::asio::const_buffer(in.data() + *consumed, in.size() - *consumed), ec);
    *consumed += n;
    size_t produced = kScratch - body.size;
    body.data = nullptr;
    body.size = 0;
    if (produced > 0) {
      body_bytes_ += produced;
      if (!sink(std::string_view(impl_->scratch.get(), produced))) {
        return Fail(ParseError::kAborted, "stopped by the body sink");
      }
    }
    if (ec == bhttp::error::need_buffer) continue;  // the scratch filled up
    if (ec == bhttp::error::need_more) return ParseStatus::kNeedMore;
    if (ec) return Fail(Classify(ec), ec.message());
    if (p.is_done()) return ParseStatus::kDone;
    if (!header_was_done && p.is_header_done()) return ParseStatus::kNeedMore;
    if (n == 0 && produced == 0) return ParseStatus::kNeedMore;
  }
}

ParseStatus ResponseParser::FeedEof(const BodySink& sink) {
  (void)sink;  // put_eof never yields body bytes: they were all passed on by Feed
  if (error_ != ParseError::kNone) return ParseStatus::kError;
  if (impl_->p.is_done()) return ParseStatus::kDone;
  beast::error_code ec;
  if (impl_->p.got_some()) impl_->p.put_eof(ec);  // put_eof requires some input
  if (!ec && impl_->p.is_done()) return ParseStatus::kDone;
  return Fail(ParseError::kTruncated, ec ? ec.message() : "end of stream inside a response");
}

bool ResponseParser::header_done() const { return impl_->p.is_header_done(); }
int ResponseParser::status() const { return impl_->p.get().result_int(); }
HeaderMap ResponseParser::headers() const { return CollectHeaders(impl_->p.get()); }
bool ResponseParser::keep_alive() const { return impl_->p.keep_alive(); }

std::optional<uint64_t> ResponseParser::content_length() const {
  auto n = impl_->p.content_length();
  if (!n) return std::nullopt;
  return *n;
}

// ---- Formatting ------------------------------------------------------------

std::string ReasonPhrase(int status) {
  if (status < 0 || status > 999) return "Unknown";
  auto s = bhttp::int_to_status(static_cast<unsigned>(status));
  if (s == bhttp::status::unknown) return "Unknown";
  return std::string(bhttp::obsolete_reason(s));
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) continue;
    if (kExtra.find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool IsValidHeader(std::string_view name, std::string_view value) {
  if (!IsToken(name)) return false;
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

namespace {
void AppendHeaders(std::string* out, const HeaderList& headers) {
  for (const auto& [name, value] : headers) {
    *out += name;
    *out += ": ";
    *out += value;
    *out += "\r\n";
  }
  *out += "\r\n";
}
}  // namespace

std::string FormatResponseHead(int status, const HeaderList& headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + ReasonPhrase(status) + "\r\n";
  AppendHeaders(&out, headers);
  return out;
}

std::string FormatRequestHead(std::string_view method, std::string_view target, const HeaderList& headers) {
  std::string out;
  out += method;
  out += ' ';
  out += target;
  out += " HTTP/1.1\r\n";
  AppendHeaders(&out, headers);
  return out;
}

}  // namespace cm::http
