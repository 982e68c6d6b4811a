// The pure parts of lib/http: Range and Content-Range, URLs, and the
// incremental request and response parsers (fed whole, byte by byte, at
// random split points, and with random bytes).
#include "http/wire.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>


#include "http/client.h"
#include "http/range.h"

namespace cm::http {
namespace {

using Kind = RangeRequest::Kind;

TEST(Range, FirstToLast) {
  auto r = ParseRange("bytes=10-19", 100);
  ASSERT_EQ(r.kind, Kind::kRange);
  EXPECT_EQ(r.range, (ByteRange{10, 19}));
  EXPECT_EQ(r.range.length(), 10u);
}

TEST(Range, OpenEndedRunsToTheEnd) {
  auto r = ParseRange("bytes=90-", 100);
  ASSERT_EQ(r.kind, Kind::kRange);
  EXPECT_EQ(r.range, (ByteRange{90, 99}));
}

TEST(Range, LastIsClampedToTheSize) {
  auto r = ParseRange("bytes=90-1000", 100);
  ASSERT_EQ(r.kind, Kind::kRange);
  EXPECT_EQ(r.range, (ByteRange{90, 99}));
}

TEST(Range, SuffixIsTheLastBytes) {
  auto r = ParseRange("bytes=-10", 100);
  ASSERT_EQ(r.kind, Kind::kRange);
  EXPECT_EQ(r.range, (ByteRange{90, 99}));
  r = ParseRange("bytes=-1000", 100);
  ASSERT_EQ(r.kind, Kind::kRange);
  EXPECT_EQ(r.range, (ByteRange{0, 99}));
}

TEST(Range, UnitIsCaseInsensitiveAndSpacesAreAllowed) {
  auto r = ParseRange("  Bytes= 5 - 6 ", 100);
  ASSERT_EQ(r.kind, Kind::kRange);
  EXPECT_EQ(r.range, (ByteRange{5, 6}));
}

TEST(Range, StartAtOrPastTheEndIsUnsatisfiable) {
  EXPECT_EQ(ParseRange("bytes=100-", 100).kind, Kind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=0-", 0).kind, Kind::kUnsatisfiable);
  EXPECT_EQ(ParseRange("bytes=-5", 0).kind, Kind::kUnsatisfiable);
}

TEST(Range, MalformedOrSeveralRangesAreUnsatisfiable) {
  for (const char* h : {"bytes=", "bytes=-", "bytes=5-4", "bytes=a-b", "bytes=1-2,5-6", "bytes=-0", "bytes 1-2",
                        "bytes=99999999999999999999-", "bytes=1-2-3"}) {
    EXPECT_EQ(ParseRange(h, 100).kind, Kind::kUnsatisfiable) << h;
  }
}

TEST(Range, AbsentOrOtherUnitMeansTheWhole) {
  EXPECT_EQ(ParseRange("", 100).kind, Kind::kWhole);
  EXPECT_EQ(ParseRange("items=1-2", 100).kind, Kind::kWhole);
}

TEST(Range, FormatsRoundTrip) {
  EXPECT_EQ(FormatRange(5, std::nullopt), "bytes=5-");
  EXPECT_EQ(FormatRange(5, 9), "bytes=5-9");
  EXPECT_EQ(FormatContentRange({5, 9}, 100), "bytes 5-9/100");
  EXPECT_EQ(FormatUnsatisfiedRange(100), "bytes */100");
  auto cr = ParseContentRange("bytes 5-9/100");
  ASSERT_TRUE(cr);
  EXPECT_EQ(cr->range, (ByteRange{5, 9}));
  EXPECT_EQ(cr->size, 100u);
  cr = ParseContentRange("bytes 5-9/*");
  ASSERT_TRUE(cr);
  EXPECT_FALSE(cr->size);
}

TEST(Range, BadContentRangeIsRejected) {
  for (const char* h : {"", "bytes */100", "bytes 9-5/100", "bytes 5-100/100", "items 1-2/3", "bytes 1-2", "bytes -2/3"}) {
    EXPECT_FALSE(ParseContentRange(h)) << h;
  }
}

RC_GTEST_PROP(Range, ASatisfiableRangeLiesInsideTheResource, (uint64_t a, uint64_t b, uint32_t size)) {
  for (const std::string& h : {FormatRange(a % (size + 2ull), std::nullopt), FormatRange(a % (size + 2ull), b % (size + 2ull)),
                               "bytes=-" + std::to_string(b % (size + 2ull))}) {
    auto r = ParseRange(h, size);
    if (r.kind == Kind::kRange) {
      RC_ASSERT(r.range.first <= r.range.last);
      RC_ASSERT(r.range.last < size);
      auto cr = ParseContentRange(FormatContentRange(r.range, size));
      RC_ASSERT(cr.has_value());
      RC_ASSERT(cr->range == r.range);
    }
  }
}

TEST(Url, ParsesHostPortAndTarget) {
  auto u = ParseUrl("http://1.2.3.4:7710/v1/fetch?x=1");
  ASSERT_TRUE(u.ok()) << u.status().ToString();
  EXPECT_EQ(u->host, "1.2.3.4");
  EXPECT_EQ(u->port, 7710);
  EXPECT_EQ(u->target, "/v1/fetch?x=1");
  EXPECT_EQ(u->ToString(), "http://1.2.3.4:7710/v1/fetch?x=1");
}

TEST(Url, DefaultsArePort80AndSlash) {
  auto u = ParseUrl("HTTP://ccm.example");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "ccm.example");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/");
  u = ParseUrl("http://h:1?q#frag");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->target, "/?q");
}

TEST(Url, RejectsWhatItDoesNotSupport) {
  for (const char* s : {"", "https://a/", "ftp://a", "http://", "http://:80/", "http://a:0/", "http://a:65536/",
                        "http://a:x/", "http://u@a/", "http://[::1]:80/", "http://a b/", "http://a/b c", "1.2.3.4:80"}) {
    auto u = ParseUrl(s);
    EXPECT_FALSE(u.ok()) << s;
    if (!u.ok()) {
      EXPECT_EQ(u.status().code(), Code::kUsage);
    }
  }
}

// ---- Request parser -------------------------------------------------------

struct ParsedRequest {
  ParseStatus status = ParseStatus::kNeedMore;
  ParseError error = ParseError::kNone;
  std::string method, target, body;
  HeaderMap headers;
  bool keep_alive = false;
  size_t consumed = 0;
};

// Feeds `wire` in pieces cut at `cuts` (offsets), keeping unconsumed bytes as
// a server does.
ParsedRequest FeedRequest(std::string_view wire, const std::vector<size_t>& cuts, uint64_t body_limit = 1 << 20,
                          size_t header_limit = 8 << 10) {
  RequestParser p(header_limit, body_limit);
  ParsedRequest out;
  std::string pending;
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(wire.size());
  for (size_t end : ends) {
    end = std::clamp(end, pos, wire.size());
    pending.append(wire.substr(pos, end - pos));
    pos = end;
    for (;;) {
      size_t used = 0;
      out.status = p.Feed(pending, &used);
      pending.erase(0, used);
      out.consumed += used;
      if (out.status != ParseStatus::kNeedMore || used == 0 || pending.empty()) break;
    }
    if (out.status != ParseStatus::kNeedMore) break;
  }
  if (out.status == ParseStatus::kNeedMore) out.status = p.FeedEof();
  out.error = p.error();
  if (out.status == ParseStatus::kDone) {
    out.method = p.method();
    out.target = p.target();
    out.headers = p.headers();
    out.keep_alive = p.keep_alive();
    out.body = p.TakeBody();
  }
  return out;
}

const std::string kPost =
    "POST /v1/progress?job=7 HTTP/1.1\r\nHost: ccm\r\nContent-Type: application/json\r\n"
    "X-Twice: a\r\nx-twice: b\r\nContent-Length: 13\r\n\r\n{\"bytes\":100}";

TEST(RequestParser, ParsesAWholeRequest) {
  auto r = FeedRequest(kPost, {});
  ASSERT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/progress?job=7");
  EXPECT_EQ(r.body, "{\"bytes\":100}");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.headers["x-twice"], "a, b");
  EXPECT_TRUE(r.keep_alive);
  EXPECT_EQ(r.consumed, kPost.size());
}

TEST(RequestParser, AnySplitGivesTheSameRequest) {
  for (size_t cut = 0; cut <= kPost.size(); ++cut) {
    auto r = FeedRequest(kPost, {cut});
    ASSERT_EQ(r.status, ParseStatus::kDone) << cut;
    EXPECT_EQ(r.body, "{\"bytes\":100}") << cut;
    EXPECT_EQ(r.target, "/v1/progress?job=7") << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < kPost.size(); ++i) every.push_back(i);
  EXPECT_EQ(FeedRequest(kPost, every).body, "{\"bytes\":100}");
}

TEST(RequestParser, StopsAtTheEndOfTheFirstOfTwoPipelinedRequests) {
  std::string two = kPost + "GET / HTTP/1.1\r\n\r\n";
  RequestParser p(8 << 10, 1 << 20);
  size_t used = 0, total = 0;
  ParseStatus st;
  do {
    st = p.Feed(std::string_view(two).substr(total), &used);
    total += used;
  } while (st == ParseStatus::kNeedMore && used > 0);
  EXPECT_EQ(st, ParseStatus::kDone);
  EXPECT_EQ(total, kPost.size());
}

TEST(RequestParser, ReturnsWhenTheHeaderIsCompleteBeforeTheBody) {
  RequestParser p(8 << 10, 1 << 20);
  size_t used = 0;
  EXPECT_EQ(p.Feed(kPost, &used), ParseStatus::kNeedMore);
  EXPECT_TRUE(p.header_done());
  EXPECT_EQ(used, kPost.find("\r\n\r\n") + 4);
  EXPECT_FALSE(p.expects_continue());
}

TEST(RequestParser, SeesExpectContinue) {
  RequestParser p(8 << 10, 1 << 20);
  size_t used = 0;
  p.Feed("PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", &used);
  ASSERT_TRUE(p.header_done());
  EXPECT_TRUE(p.expects_continue());
}

TEST(RequestParser, DecodesChunkedBodies) {
  auto r = FeedRequest("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", {7, 50});
  ASSERT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.body, "abcde");
}

TEST(RequestParser, ContentLengthOverTheLimitFailsAtTheHeader) {
  RequestParser p(8 << 10, 100);
  size_t used = 0;
  EXPECT_EQ(p.Feed("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", &used), ParseStatus::kError);
  EXPECT_EQ(p.error(), ParseError::kBodyTooLarge);
}

TEST(RequestParser, ChunkedBodyOverTheLimitFails) {
  auto r = FeedRequest("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n", {}, 4);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, ParseError::kBodyTooLarge);
}

TEST(RequestParser, LongHeaderFails) {
  std::string req = "GET / HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n";
  auto r = FeedRequest(req, {100, 5000}, 1 << 20, 4096);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, ParseError::kHeaderTooLarge);
}

TEST(RequestParser, GarbageIsBad) {
  for (const char* g : {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
                        "\x01\x02\x03\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    auto r = FeedRequest(g, {});
    EXPECT_EQ(r.status, ParseStatus::kError) << g;
    EXPECT_EQ(r.error, ParseError::kBad) << g;
  }
}

TEST(RequestParser, EndOfStreamInsideABodyIsTruncated) {
  auto r = FeedRequest("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", {});
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, ParseError::kTruncated);
  RequestParser p(100, 100);
  EXPECT_EQ(p.FeedEof(), ParseStatus::kError);  // nothing at all
}

TEST(RequestParser, Http10ClosesUnlessAskedToKeepAlive) {
  EXPECT_FALSE(FeedRequest("GET / HTTP/1.0\r\n\r\n", {}).keep_alive);
  EXPECT_TRUE(FeedRequest("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", {}).keep_alive);
  EXPECT_FALSE(FeedRequest("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", {}).keep_alive);
}

RC_GTEST_PROP(RequestParser, RandomSplitsGiveTheSameBody, (const std::string& body, std::vector<size_t> cuts)) {
  std::string wire = "PUT /p HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  for (auto& c : cuts) c %= wire.size() + 1;
  std::sort(cuts.begin(), cuts.end());
  auto r = FeedRequest(wire, cuts);
  RC_ASSERT(r.status == ParseStatus::kDone);
  RC_ASSERT(r.body == body);
}

RC_GTEST_PROP(RequestParser, RandomBytesNeverCrash, (const std::string& junk, std::vector<size_t> cuts)) {
  for (auto& c : cuts) c %= junk.size() + 1;
  std::sort(cuts.begin(), cuts.end());
  auto r = FeedRequest(junk, cuts, 64, 64);
  RC_ASSERT(r.consumed <= junk.size());
  r = FeedRequest("POST / HTTP/1.1\r\n" + junk, cuts, 64, 256);
  RC_ASSERT(r.consumed <= junk.size() + 17);
}

// ---- Response parser ------------------------------------------------------

struct ParsedResponse {
  ParseStatus status = ParseStatus::kNeedMore;
  ParseError error = ParseError::kNone;
  int code = 0;
  std::string body;
  HeaderMap headers;
};

ParsedResponse FeedResponse(std::string_view wire, const std::vector<size_t>& cuts, bool head = false,
                            bool eof = true) {
  ResponseParser p(head, 1 << 20);
  ParsedResponse out;
  auto sink = [&](std::string_view b) {
    out.body.append(b);
    return true;
  };
  std::string pending;
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(wire.size());
  for (size_t end : ends) {
    end = std::clamp(end, pos, wire.size());
    pending.append(wire.substr(pos, end - pos));
    pos = end;
    for (;;) {
      size_t used = 0;
      out.status = p.Feed(pending, &used, sink);
      pending.erase(0, used);
      if (out.status != ParseStatus::kNeedMore || used == 0 || pending.empty()) break;
    }
    if (out.status != ParseStatus::kNeedMore) break;
  }
  if (out.status == ParseStatus::kNeedMore && eof) out.status = p.FeedEof(sink);
  out.error = p.error();
  if (p.header_done()) {
    out.code = p.status();
    out.headers = p.headers();
  }
  EXPECT_EQ(p.body_bytes(), out.body.size());
  return out;
}

TEST(ResponseParser, DeliversAContentLengthBody) {
  std::string wire = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nContent-Length: 5\r\n\r\nhello";
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    auto r = FeedResponse(wire, {cut});
    ASSERT_EQ(r.status, ParseStatus::kDone) << cut;
    EXPECT_EQ(r.code, 206);
    EXPECT_EQ(r.body, "hello");
    EXPECT_EQ(r.headers["content-range"], "bytes 0-4/10");
  }
}

TEST(ResponseParser, DeliversABodyLargerThanItsScratchBuffer) {
  std::string body(300 << 10, 'x');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>(i * 7919 % 251);
  auto r = FeedResponse("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body, {});
  ASSERT_EQ(r.status, ParseStatus::kDone);
  EXPECT_TRUE(r.body == body);
}

TEST(ResponseParser, DecodesChunkedAndCloseDelimitedBodies) {
  auto r = FeedResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", {20});
  ASSERT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.body, "abc");
  r = FeedResponse("HTTP/1.1 200 OK\r\n\r\nuntil the end", {20});
  ASSERT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.body, "until the end");
}

TEST(ResponseParser, HeadResponseHasNoBody) {
  auto r = FeedResponse("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", {}, /*head=*/true, /*eof=*/false);
  ASSERT_EQ(r.status, ParseStatus::kDone);
  EXPECT_EQ(r.headers["content-length"], "1000");
}

TEST(ResponseParser, ShortBodyIsTruncated) {
  auto r = FeedResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", {});
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, ParseError::kTruncated);
  EXPECT_EQ(r.body, "abc");  // what arrived was delivered
}

TEST(ResponseParser, SinkCanStopTheBody) {
  ResponseParser p(false, std::nullopt);
  size_t used = 0;
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  EXPECT_EQ(p.Feed(wire, &used, [](std::string_view) { return true; }), ParseStatus::kNeedMore);  // header
  EXPECT_EQ(p.Feed(std::string_view(wire).substr(used), &used, [](std::string_view) { return false; }),
            ParseStatus::kError);
  EXPECT_EQ(p.error(), ParseError::kAborted);
}

// Where the bytes happen to be split never changes what is parsed: any
// bytes, as a response, a response head plus junk, or a chunked body of
// junk, fed in random pieces, give what they give fed whole (the outcome,
// the status code, the headers and the body).
RC_GTEST_PROP(ResponseParser, AnySplitOfAnyBytesParsesAsTheWhole,
              (const std::string& junk, std::vector<size_t> cuts, bool head)) {
  for (const std::string& wire : {junk, "HTTP/1.1 200 OK\r\n" + junk,
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + junk}) {
    std::vector<size_t> at = cuts;
    for (auto& c : at) c %= wire.size() + 1;
    std::sort(at.begin(), at.end());
    ParsedResponse whole = FeedResponse(wire, {}, head);
    ParsedResponse split = FeedResponse(wire, at, head);
    RC_ASSERT(split.status == whole.status);
    // Which error is named may depend on the pieces ("\x15" then "a" ends
    // as kTruncated, "\x15a" at once as kBad); that there is one may not.
    RC_ASSERT((split.error == ParseError::kNone) == (whole.error == ParseError::kNone));
    RC_ASSERT(split.code == whole.code);
    RC_ASSERT(split.body == whole.body);
    RC_ASSERT(split.headers == whole.headers);
  }
}

// ---- Formatting -----------------------------------------------------------

TEST(Format, HeadsAreWellFormed) {
  EXPECT_EQ(FormatResponseHead(404, {{"Content-Length", "0"}}), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(FormatRequestHead("GET", "/x", {{"Host", "a:1"}}), "GET /x HTTP/1.1\r\nHost: a:1\r\n\r\n");
  EXPECT_EQ(ReasonPhrase(206), "Partial Content");
  EXPECT_EQ(ReasonPhrase(799), "Unknown");
}

TEST(Format, HeaderValidation) {
  EXPECT_TRUE(IsValidHeader("X-Job", "7"));
  EXPECT_FALSE(IsValidHeader("X Job", "7"));
  EXPECT_FALSE(IsValidHeader("", "7"));
  EXPECT_FALSE(IsValidHeader("X", "a\r\nInjected: 1"));
  EXPECT_FALSE(IsValidHeader("X", std::string("a\0b", 3)));
}

}  // namespace
}  // namespace cm::http
