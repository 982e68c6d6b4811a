// HTTP/1.1 on the wire: incremental parsers for requests and responses, and
// the formatting of message heads. The parsers are Boost.Beast's, kept
// inside wire.cc (the only translation unit of the project that includes
// Beast); this header is free of Boost.
//
// A parser is a state machine fed bytes as they arrive: Feed says how many
// it consumed and whether it needs more, has a complete message, or found
// an error; the caller keeps unconsumed bytes and presents them again,
// followed by new ones, on the next call (a partial header is consumed only
// once whole). Feed returns as soon as the header is complete, before any
// body byte is consumed, so the caller can look at the header first (answer
// "Expect: 100-continue", reject, check a status). Parsers are total: any
// input yields kNeedMore, kDone or kError, never a crash; allocation is
// bounded by the header and body limits.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cm::http {

// Header names in lower case; repeated headers joined with ", ".
using HeaderMap = std::map<std::string, std::string>;
// Headers in the order they are written.
using HeaderList = std::vector<std::pair<std::string, std::string>>;

enum class ParseStatus { kNeedMore, kDone, kError };

enum class ParseError {
  kNone,
  kBad,             // not HTTP/1.x, or malformed
  kHeaderTooLarge,  // the header exceeds its limit
  kBodyTooLarge,    // Content-Length or the chunks exceed the body limit
  kTruncated,       // end of stream inside a message
  kAborted,         // the body sink asked to stop (ResponseParser)
};

class RequestParser {
 public:
  RequestParser(size_t header_limit, uint64_t body_limit);
  ~RequestParser();
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  ParseStatus Feed(std::string_view in, size_t* consumed);
  // The peer closed: kError kTruncated unless the message was complete.
  ParseStatus FeedEof();

  ParseError error() const { return error_; }
  const std::string& error_message() const { return error_message_; }

  // Valid once header_done().
  bool header_done() const;
  std::string method() const;
  std::string target() const;
  HeaderMap headers() const;
  unsigned version() const;  // 10 or 11
  // Whether the connection may stay open after this request (HTTP/1.1
  // default, or "Connection: keep-alive" on 1.0).
  bool keep_alive() const;
  bool expects_continue() const;  // "Expect: 100-continue"
  // Once header_done() and before any body byte is fed: lowers the body
  // limit for this request (a larger value changes nothing). False, with
  // error() kBodyTooLarge, when the declared Content-Length exceeds it.
  bool LowerBodyLimit(uint64_t limit);

  // Valid once Feed returned kDone; moves the body out.
  std::string TakeBody();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ParseError error_ = ParseError::kNone;
  std::string error_message_;
  uint64_t body_limit_ = 0;
};

class ResponseParser {
 public:
  // Receives body bytes as they are parsed (chunked encoding removed);
  // returns false to stop (Feed then returns kError, kAborted).
  using BodySink = std::function<bool(std::string_view bytes)>;

  // head_request: the request was HEAD, so no body follows whatever the
  // header says. body_limit: nullopt for none.
  ResponseParser(bool head_request, std::optional<uint64_t> body_limit, size_t header_limit = 64 << 10);
  ~ResponseParser();
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  ParseStatus Feed(std::string_view in, size_t* consumed, const BodySink& sink);
  // The peer closed: completes a body delimited by the end of the stream,
  // otherwise kError kTruncated unless the message was complete.
  ParseStatus FeedEof(const BodySink& sink);

  ParseError error() const { return error_; }
  const std::string& error_message() const { return error_message_; }

  // Valid once header_done().
  bool header_done() const;
  int status() const;
  HeaderMap headers() const;
  std::optional<uint64_t> content_length() const;
  bool keep_alive() const;

  uint64_t body_bytes() const { return body_bytes_; }  // delivered to the sink so far

 private:
  ParseStatus Fail(ParseError e, std::string message);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ParseError error_ = ParseError::kNone;
  std::string error_message_;
  uint64_t body_bytes_ = 0;
};

// "OK", "Not Found", ...; "Unknown" for codes without a phrase.
std::string ReasonPhrase(int status);

// A header that can be written as is: a token name (RFC 9110 §5.6.2) and a
// value without CR, LF or NUL.
bool IsValidHeader(std::string_view name, std::string_view value);
bool IsToken(std::string_view s);

// "HTTP/1.1 <status> <reason>\r\n" + "Name: value\r\n"... + "\r\n". Headers
// must be valid (IsValidHeader); the caller filters.
std::string FormatResponseHead(int status, const HeaderList& headers);
// "<method> <target> HTTP/1.1\r\n" + headers + "\r\n".
std::string FormatRequestHead(std::string_view method, std::string_view target, const HeaderList& headers);

}  // namespace cm::http
