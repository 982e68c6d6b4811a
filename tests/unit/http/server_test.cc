// Server and client together on loopback (127.0.0.1, port 0): calls,
// keep-alive, ranges of static and growing sources, a stalled stream closed
// at the idle limit and resumed, error statuses, Stop with open connections,
// and garbage on the socket.
#include "http/server.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "http/client.h"
#include "http/socket.h"

namespace cm::http {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7919 + i / 251) % 251);
  return s;
}

// A resource whose bytes become available over time, like a relay's copy of
// an assignment still arriving.
class GrowingSource : public BodySource {
 public:
  explicit GrowingSource(std::string data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  void MakeAvailable(uint64_t n) {
    std::lock_guard<std::mutex> g(mu_);
    available_ = std::max(available_, std::min<uint64_t>(n, data_.size()));
    cv_.notify_all();
  }
  uint64_t available() const {
    std::lock_guard<std::mutex> g(mu_);
    return available_;
  }
  Result<size_t> Read(uint64_t offset, std::span<char> out, std::chrono::steady_clock::time_point deadline) override {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_until(l, deadline, [&] { return available_ > offset; });
    if (available_ <= offset) return size_t{0};
    size_t n = std::min<uint64_t>(out.size(), available_ - offset);
    std::memcpy(out.data(), data_.data() + offset, n);
    return n;
  }

 private:
  const std::string data_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t available_ = 0;
};

std::unique_ptr<Server> StartServer(Handler h, ServerOptions o = {}) {
  o.listen = "127.0.0.1:0";
  auto s = Server::Start(o, std::move(h));
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

std::string UrlOf(const Server& s, const std::string& path) { return "http://" + s.address() + path; }

// Serves `src` at /content; anything else is 404.
Handler ContentHandler(std::shared_ptr<BodySource> src) {
  return [src](const Request& r) {
    if (r.path() != "/content") return Response::Json(404, R"({"error":"no such thing"})");
    Response res;
    res.content_type = "application/octet-stream";
    res.stream = src;
    return res;
  };
}

// Writes raw bytes on a new connection, half-closes it (so the server never
// waits for more), and reads until the server closes it (or the timeout).
std::string RawExchange(uint16_t port, std::string_view bytes, milliseconds timeout = 1000ms) {
  auto s = Socket::Connect("127.0.0.1", port, Clock::now() + timeout);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (!s.ok()) return "";
  (void)s->WriteAll(bytes, Clock::now() + timeout);
  s->ShutdownWrite();
  std::string out;
  char buf[4096];
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto r = s->ReadSome(buf, sizeof buf, deadline);
    if (!r.ok() || *r == 0) break;
    out.append(buf, *r);
  }
  return out;
}

Status Collect(const std::string& url, uint64_t offset, std::optional<uint64_t> end, std::string* out,
               FetchOptions o = {}) {
  return FetchRange(url, offset, end, [out](std::string_view b) {
    out->append(b);
    return Status::Ok();
  }, o);
}

TEST(Server, JsonPostRoundTrip) {
  auto server = StartServer([](const Request& r) {
    const std::string* ct = r.header("content-type");
    return Response::Json(200, "{\"method\":\"" + r.method + "\",\"target\":\"" + r.target + "\",\"ct\":\"" +
                                   (ct ? *ct : "") + "\",\"peer\":\"" + r.peer_ip + "\",\"echo\":" + r.body + "}");
  });
  ASSERT_TRUE(server);
  auto res = Call("POST", UrlOf(*server, "/v1/progress?job=7"), R"({"bytes":42})", 2000ms);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, R"({"method":"POST","target":"/v1/progress?job=7","ct":"application/json",)"
                       R"("peer":"127.0.0.1","echo":{"bytes":42}})");
  ASSERT_TRUE(res->header("content-type"));
  EXPECT_EQ(*res->header("content-type"), "application/json");
}

TEST(Server, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto server = StartServer([](const Request& r) { return Response::Json(200, "{\"n\":" + r.body + "}"); });
  ASSERT_TRUE(server);
  Client client;
  for (int i = 0; i < 5; ++i) {
    auto res = client.Call("POST", UrlOf(*server, "/n"), std::to_string(i), 2000ms);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_EQ(res->body, "{\"n\":" + std::to_string(i) + "}");
    EXPECT_TRUE(client.connected());
  }
  EXPECT_EQ(server->stats().connections_accepted, 1u);
  EXPECT_EQ(server->stats().requests, 5u);
}

TEST(Server, PipelinedRequestsAreAnsweredInOrder) {
  auto server = StartServer([](const Request& r) { return Response::Text(200, r.target); });
  ASSERT_TRUE(server);
  std::string out = RawExchange(server->port(),
                                "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
                                "GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  size_t a = out.find("/first"), b = out.find("/second");
  ASSERT_NE(a, std::string::npos) << out;
  ASSERT_NE(b, std::string::npos) << out;
  EXPECT_LT(a, b);
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
}

TEST(Server, ClientReconnectsWhenTheServerClosedAnIdleConnection) {
  ServerOptions o;
  o.idle_timeout = 100ms;
  auto server = StartServer([](const Request&) { return Response::Json(200, "{}"); }, o);
  ASSERT_TRUE(server);
  Client client;
  ASSERT_TRUE(client.Call("GET", UrlOf(*server, "/"), "", 1000ms).ok());
  std::this_thread::sleep_for(300ms);  // the server drops the idle connection
  auto res = client.Call("GET", UrlOf(*server, "/"), "", 1000ms);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(server->stats().connections_accepted, 2u);
}

TEST(Server, RangeGetOfAStaticSource) {
  const std::string data = Pattern(1000);
  auto server = StartServer(ContentHandler(std::make_shared<StringSource>(data)));
  ASSERT_TRUE(server);
  const std::string url = UrlOf(*server, "/content");
  Client client;

  auto whole = client.Call("GET", url, "", 2000ms);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(whole->status, 200);
  EXPECT_TRUE(whole->body == data);
  EXPECT_EQ(*whole->header("accept-ranges"), "bytes");

  auto part = client.Call("GET", url, "", 2000ms, "", {{"Range", "bytes=10-19"}});
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->status, 206);
  EXPECT_EQ(part->body, data.substr(10, 10));
  EXPECT_EQ(*part->header("content-range"), "bytes 10-19/1000");

  auto open = client.Call("GET", url, "", 2000ms, "", {{"Range", "bytes=990-"}});
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(open->status, 206);
  EXPECT_EQ(open->body, data.substr(990));

  auto suffix = client.Call("GET", url, "", 2000ms, "", {{"Range", "bytes=-5"}});
  ASSERT_TRUE(suffix.ok());
  EXPECT_EQ(suffix->body, data.substr(995));

  auto none = client.Call("GET", url, "", 2000ms, "", {{"Range", "bytes=1000-"}});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->status, 416);
  EXPECT_EQ(*none->header("content-range"), "bytes */1000");
  EXPECT_EQ(none->body, "");
  EXPECT_EQ(server->stats().connections_accepted, 1u);  // all on one connection

  std::string got;
  std::optional<uint64_t> size;
  FetchOptions fo;
  fo.resource_size = &size;
  ASSERT_TRUE(Collect(url, 100, std::nullopt, &got, fo).ok());
  EXPECT_TRUE(got == data.substr(100));
  EXPECT_EQ(size, 1000u);
  got.clear();
  ASSERT_TRUE(Collect(url, 0, 9, &got).ok());
  EXPECT_EQ(got, data.substr(0, 10));

  Status st = Collect(url, 1000, std::nullopt, &got);
  EXPECT_EQ(st.code(), Code::kFailure);
  EXPECT_NE(st.message().find("HTTP 416"), std::string::npos) << st.message();
}

TEST(Server, HeadGivesTheSizeWithoutABody) {
  auto server = StartServer(ContentHandler(std::make_shared<StringSource>(Pattern(1000))));
  ASSERT_TRUE(server);
  Client client;
  auto res = client.Call("HEAD", UrlOf(*server, "/content"), "", 2000ms);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(*res->header("content-length"), "1000");
  EXPECT_EQ(res->body, "");
  // The connection is still usable: no body bytes were left on it.
  auto again = client.Call("GET", UrlOf(*server, "/content"), "", 2000ms, "", {{"Range", "bytes=0-0"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status, 206);
  EXPECT_EQ(server->stats().connections_accepted, 1u);
}

TEST(Server, GrowingSourceIsStreamedInOrderWhileItArrives) {
  const std::string data = Pattern(1 << 20);
  auto src = std::make_shared<GrowingSource>(data);
  auto server = StartServer(ContentHandler(src));
  ASSERT_TRUE(server);
  std::atomic<bool> produced_all{false};
  std::thread producer([&] {
    for (uint64_t n = 16 << 10; n <= data.size(); n += 16 << 10) {
      src->MakeAvailable(n);
      std::this_thread::sleep_for(2ms);
    }
    produced_all = true;
  });
  std::string got;
  bool first_before_end = false;
  Status st = FetchRange(UrlOf(*server, "/content"), 0, std::nullopt, [&](std::string_view b) {
    if (got.empty()) first_before_end = !produced_all;
    got.append(b);
    return Status::Ok();
  });
  producer.join();
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  EXPECT_TRUE(first_before_end);
}

TEST(Server, StalledStreamIsClosedAtTheIdleLimitAndTheClientResumes) {
  const std::string data = Pattern(1 << 20);
  auto src = std::make_shared<GrowingSource>(data);
  src->MakeAvailable(300000);
  ServerOptions o;
  o.idle_timeout = 200ms;
  auto server = StartServer(ContentHandler(src), o);
  ASSERT_TRUE(server);
  const std::string url = UrlOf(*server, "/content");
  std::string got;
  FetchOptions fo;
  fo.idle_timeout = 2000ms;
  auto t0 = Clock::now();
  Status st = Collect(url, 0, std::nullopt, &got, fo);
  EXPECT_LT(Clock::now() - t0, 1500ms);
  EXPECT_EQ(st.code(), Code::kIo) << st.ToString();
  EXPECT_NE(st.message().find("connection closed after 300000 of 1048576 bytes"), std::string::npos) << st.message();
  ASSERT_EQ(got.size(), 300000u);

  src->MakeAvailable(data.size());
  st = Collect(url, got.size(), std::nullopt, &got, fo);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_TRUE(got == data);
}

TEST(Server, ClientGivesUpWhenNoDataArrivesForItsIdleTimeout) {
  auto src = std::make_shared<GrowingSource>(Pattern(10000));
  src->MakeAvailable(1000);
  auto server = StartServer(ContentHandler(src));
  ASSERT_TRUE(server);
  std::string got;
  FetchOptions fo;
  fo.idle_timeout = 200ms;
  Status st = Collect(UrlOf(*server, "/content"), 0, std::nullopt, &got, fo);
  EXPECT_EQ(st.code(), Code::kIo);
  EXPECT_NE(st.message().find("no data for 200 ms (after 1000 of 10000 bytes)"), std::string::npos) << st.message();
  EXPECT_EQ(got.size(), 1000u);
}

TEST(Server, CancelFlagStopsAFetch) {
  auto src = std::make_shared<GrowingSource>(Pattern(10000));
  auto server = StartServer(ContentHandler(src));
  ASSERT_TRUE(server);
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(100ms);
    cancel = true;
  });
  std::string got;
  FetchOptions fo;
  fo.cancel = &cancel;
  auto t0 = Clock::now();
  Status st = Collect(UrlOf(*server, "/content"), 0, std::nullopt, &got, fo);
  canceller.join();
  EXPECT_LT(Clock::now() - t0, 1000ms);
  EXPECT_EQ(st.code(), Code::kFailure);
  EXPECT_NE(st.message().find("cancelled"), std::string::npos) << st.message();
}

TEST(Server, SinkErrorStopsAFetch) {
  auto server = StartServer(ContentHandler(std::make_shared<StringSource>(Pattern(1 << 20))));
  ASSERT_TRUE(server);
  Status st = FetchRange(UrlOf(*server, "/content"), 0, std::nullopt,
                         [](std::string_view) { return Error(Code::kCorrupt, "chunk 0 hash mismatch"); });
  EXPECT_EQ(st.code(), Code::kCorrupt);
  EXPECT_EQ(st.message(), "chunk 0 hash mismatch");
}

TEST(Server, RangeStartMismatchIsRejectedBeforeAnyByteIsDelivered) {
  // A server that ignores Range and always sends bytes 0-9.
  auto server = StartServer([](const Request&) {
    Response r = Response::Text(206, "0123456789");
    r.headers.emplace_back("Content-Range", "bytes 0-9/100");
    return r;
  });
  ASSERT_TRUE(server);
  std::string got;
  Status st = Collect(UrlOf(*server, "/content"), 50, std::nullopt, &got);
  EXPECT_EQ(st.code(), Code::kFailure);
  EXPECT_NE(st.message().find("asked for bytes=50-, got bytes 0-9/100"), std::string::npos) << st.message();
  EXPECT_EQ(got, "");
}

TEST(Server, NotFoundIsAStatusForCallAndAnErrorForFetch) {
  auto server = StartServer(ContentHandler(std::make_shared<StringSource>("x")));
  ASSERT_TRUE(server);
  auto res = Call("GET", UrlOf(*server, "/nothing"), "", 2000ms);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 404);
  std::string got;
  Status st = Collect(UrlOf(*server, "/nothing"), 0, std::nullopt, &got);
  EXPECT_EQ(st.code(), Code::kNotFound);
  EXPECT_EQ(st.message(), UrlOf(*server, "/nothing") + R"(: HTTP 404 Not Found: {"error":"no such thing"})");
}

TEST(Server, MalformedRequestGets400) {
  auto server = StartServer([](const Request&) { return Response::Json(200, "{}"); });
  ASSERT_TRUE(server);
  std::string out = RawExchange(server->port(), "GARBAGE\r\n\r\n");
  EXPECT_EQ(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << out;
  EXPECT_NE(out.find("Connection: close"), std::string::npos);
  EXPECT_EQ(server->stats().requests, 0u);
}

TEST(Server, OversizedBodyGets413AndOversizedHeaderGets431) {
  ServerOptions o;
  o.max_body_bytes = 1 << 20;
  o.max_header_bytes = 4096;
  auto server = StartServer([](const Request&) { return Response::Json(200, "{}"); }, o);
  ASSERT_TRUE(server);
  auto res = Call("POST", UrlOf(*server, "/big"), std::string(2 << 20, 'x'), 2000ms);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 413);
  auto ok = Call("POST", UrlOf(*server, "/small"), std::string(1 << 20, 'x'), 2000ms);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200);
  res = Call("GET", UrlOf(*server, "/"), "", 2000ms, "", {{"X-Long", std::string(8000, 'a')}});
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 431);
}

TEST(Server, ExpectContinueIsAnswered) {
  auto server = StartServer([](const Request& r) { return Response::Text(200, "got " + r.body); });
  ASSERT_TRUE(server);
  auto s = Socket::Connect("127.0.0.1", server->port(), Clock::now() + 1s);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(s->WriteAll("PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", Clock::now() + 1s).ok());
  char buf[256];
  auto r = s->ReadSome(buf, sizeof buf, Clock::now() + 1s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(std::string(buf, *r), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(s->WriteAll("abc", Clock::now() + 1s).ok());
  r = s->ReadSome(buf, sizeof buf, Clock::now() + 1s);
  ASSERT_TRUE(r.ok());
  std::string answer(buf, *r);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("got abc"), std::string::npos);
}

TEST(Server, HandlerExceptionGives500AndTheServerCarriesOn) {
  auto server = StartServer([](const Request& r) -> Response {
    if (r.path() == "/throw") throw std::runtime_error("boom");
    return Response::Json(200, "{}");
  });
  ASSERT_TRUE(server);
  Client client;
  auto res = client.Call("GET", UrlOf(*server, "/throw"), "", 2000ms);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 500);
  res = client.Call("GET", UrlOf(*server, "/fine"), "", 2000ms);
  ASSERT_TRUE(res.ok());
  EXPECT_EQ(res->status, 200);
}

TEST(Server, InvalidResponseHeadersAreDropped) {
  auto server = StartServer([](const Request&) {
    Response r = Response::Json(200, "{}");
    r.headers = {{"X-Good", "1"}, {"X-Bad", "a\r\nInjected: yes"}, {"Content-Length", "999"}};
    return r;
  });
  ASSERT_TRUE(server);
  auto res = Call("GET", UrlOf(*server, "/"), "", 2000ms);
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE(res->header("x-good"));
  EXPECT_FALSE(res->header("x-bad"));
  EXPECT_FALSE(res->header("injected"));
  EXPECT_EQ(*res->header("content-length"), "2");
}

TEST(Server, ConnectionsOverTheLimitAreClosedAtOnce) {
  ServerOptions o;
  o.max_connections = 1;
  auto server = StartServer([](const Request&) { return Response::Json(200, "{}"); }, o);
  ASSERT_TRUE(server);
  Client first;
  ASSERT_TRUE(first.Call("GET", UrlOf(*server, "/"), "", 2000ms).ok());  // holds the one slot (keep-alive)
  // A 503 when it arrives before our request, else a reset: never a wait.
  auto res = Call("GET", UrlOf(*server, "/"), "", 2000ms);
  if (res.ok()) {
    EXPECT_EQ(res->status, 503);
  } else {
    EXPECT_EQ(res.status().code(), Code::kIo) << res.status().ToString();
  }
  EXPECT_EQ(server->stats().connections_refused, 1u);
  EXPECT_TRUE(first.Call("GET", UrlOf(*server, "/"), "", 2000ms).ok());
  first.Close();
}

TEST(Server, CallTimesOutOnASlowHandler) {
  auto server = StartServer([](const Request&) {
    std::this_thread::sleep_for(400ms);
    return Response::Json(200, "{}");
  });
  ASSERT_TRUE(server);
  const std::string url = UrlOf(*server, "/slow");
  auto res = Call("GET", url, "", 100ms);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kIo);
  EXPECT_EQ(res.status().message(), url + ": timed out after 100 ms");
}

TEST(Server, StopWithOpenConnectionsReturnsPromptly) {
  auto src = std::make_shared<GrowingSource>(Pattern(10000));
  src->MakeAvailable(100);  // then stalls forever
  auto server = StartServer(ContentHandler(src));  // idle limit 30 s
  ASSERT_TRUE(server);
  // Idle keep-alive connections, one half-sent request, one stalled stream.
  std::vector<Socket> idle;
  for (int i = 0; i < 3; ++i) {
    auto s = Socket::Connect("127.0.0.1", server->port(), Clock::now() + 1s);
    ASSERT_TRUE(s.ok());
    idle.push_back(std::move(s).value());
  }
  ASSERT_TRUE(idle[0].WriteAll("GET /content HTTP/1.1\r\nHo", Clock::now() + 1s).ok());
  auto fetch = std::async(std::launch::async, [&] {
    std::string got;
    return Collect(UrlOf(*server, "/content"), 0, std::nullopt, &got);
  });
  while (server->stats().requests < 1) std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(50ms);
  auto t0 = Clock::now();
  server->Stop();
  EXPECT_LT(Clock::now() - t0, 500ms);
  ASSERT_EQ(fetch.wait_for(1s), std::future_status::ready);
  Status st = fetch.get();
  EXPECT_EQ(st.code(), Code::kIo) << st.ToString();
  server->Stop();  // idempotent
}

TEST(Client, ConnectionRefusedSaysSo) {
  auto l = Socket::Listen("127.0.0.1", 0);
  ASSERT_TRUE(l.ok());
  uint16_t port = l->local_port();
  l->Close();  // nothing listens there now
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/v1/fetch";
  auto res = Call("POST", url, "{}", 1000ms);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kIo);
  EXPECT_EQ(res.status().message(), url + ": connection refused");
  std::string got;
  Status st = Collect(url, 0, std::nullopt, &got);
  EXPECT_EQ(st.code(), Code::kIo);
  EXPECT_EQ(st.message(), url + ": connection refused");
}

TEST(Client, BadUrlIsAUsageError) {
  auto res = Call("GET", "https://127.0.0.1/", "", 1000ms);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), Code::kUsage);
}

TEST(Server, GarbageRequestsDoNotCrash) {
  auto server = StartServer([](const Request&) { return Response::Json(200, "{}"); });
  ASSERT_TRUE(server);
  std::mt19937 rng(12345);
  std::vector<std::string> inputs = {
      std::string(1, '\0'),
      "\r\n\r\n",
      "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "GET " + std::string(20000, '/') + " HTTP/1.1\r\n\r\n",
  };
  for (int i = 0; i < 12; ++i) {
    std::string junk(1 + rng() % 2000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    if (i % 3 == 0) junk = "GET / HTTP/1.1\r\n" + junk;
    inputs.push_back(junk);
  }
  for (const auto& in : inputs) {
    std::string out = RawExchange(server->port(), in, 500ms);
    if (!out.empty()) {
      EXPECT_EQ(out.rfind("HTTP/1.1 4", 0), 0u) << out.substr(0, 100);
    }
  }
  auto res = Call("GET", UrlOf(*server, "/"), "", 2000ms);
  ASSERT_TRUE(res.ok()) << res.status().ToString();
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace cm::http
