// What an outsider can make the HTTP server hold (ServerOptions' caps and
// timeouts): idle connections from one peer never stop another peer's
// request, the server's threads and descriptors stay bounded (counted in
// /proc/self), a header that trickles in is cut at header_timeout, and a
// route's body limit applies before the body is read.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <thread>

#include "http/client.h"
#include "http/server.h"
#include "http/socket.h"

namespace cm::http {
namespace {

using namespace std::chrono_literals;

int CountEntries(const char* dir) {
  DIR* d = ::opendir(dir);
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the descriptor of the DIR itself (for /proc/self/fd), or harmless for task
}
int Threads() { return CountEntries("/proc/self/task") + 1; }
int Fds() { return CountEntries("/proc/self/fd"); }

// A TCP connection to 127.0.0.1:port from source address `from` (any of
// 127.0.0.0/8 is this host), so one process can be several peers.
Socket ConnectFrom(const char* from, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Socket();
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, from, &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    ::close(fd);
    return Socket();
  }
  return Socket(fd);
}

// Reads until the peer closes or `deadline`; returns what arrived.
std::string ReadAll(Socket& s, Clock::time_point deadline) {
  std::string out;
  char buf[4096];
  for (;;) {
    auto r = s.ReadSome(buf, sizeof buf, deadline);
    if (!r.ok() || *r == 0) return out;
    out.append(buf, *r);
  }
}

std::unique_ptr<Server> Start(ServerOptions o) {
  o.listen = "127.0.0.1:0";
  auto s = Server::Start(o, [](const Request& r) { return Response::Json(200, R"({"path":")" + r.path() + "\"}"); });
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

template <class F>
bool WaitUntil(F done, std::chrono::milliseconds limit) {
  for (auto end = Clock::now() + limit; Clock::now() < end; std::this_thread::sleep_for(10ms)) {
    if (done()) return true;
  }
  return done();
}

TEST(ServerLimits, AThousandIdleConnectionsFromOnePeerDoNotStopAnother) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 1200) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < 1200) GTEST_SKIP() << "needs 1200 descriptors, RLIMIT_NOFILE is " << rl.rlim_cur;

  ServerOptions o;  // the defaults: 64 per peer, 512 in all, 10 s for a header
  auto server = Start(o);
  ASSERT_TRUE(server);
  const int threads0 = Threads(), fds0 = Fds();

  std::vector<Socket> idle;
  for (int i = 0; i < 1000; ++i) {
    Socket s = ConnectFrom("127.0.0.1", server->port());
    ASSERT_TRUE(s.valid()) << "connection " << i;
    idle.push_back(std::move(s));
  }
  ASSERT_TRUE(WaitUntil([&] { return server->stats().connections_accepted >= 1000; }, 20s))
      << server->stats().connections_accepted;
  ServerStats st = server->stats();
  EXPECT_EQ(st.open_connections, o.max_connections_per_peer);
  EXPECT_EQ(st.connections_refused, 1000u - o.max_connections_per_peer);
  // One thread and one descriptor per open connection, nothing for refused ones.
  EXPECT_LE(Threads(), threads0 + o.max_connections_per_peer);
  EXPECT_LE(Fds(), fds0 + 1000 + o.max_connections_per_peer);

  // Another peer is answered at once.
  Socket other = ConnectFrom("127.0.0.2", server->port());
  ASSERT_TRUE(other.valid());
  ASSERT_TRUE(other.WriteAll("GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", Clock::now() + 2s).ok());
  std::string answer = ReadAll(other, Clock::now() + 5s);
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 ", 0), 0u) << answer;
  EXPECT_NE(answer.find(R"({"path":"/v1/status"})"), std::string::npos) << answer;
  EXPECT_EQ(server->stats().requests, 1u);
}

TEST(ServerLimits, TotalCapRefusesEveryPeerOnceFull) {
  ServerOptions o;
  o.max_connections = 3;
  auto server = Start(o);
  ASSERT_TRUE(server);
  std::vector<Socket> held;
  for (const char* ip : {"127.0.0.1", "127.0.0.2", "127.0.0.3"}) held.push_back(ConnectFrom(ip, server->port()));
  ASSERT_TRUE(WaitUntil([&] { return server->stats().open_connections == 3; }, 5s));
  Socket late = ConnectFrom("127.0.0.4", server->port());
  ASSERT_TRUE(late.valid());
  std::string got = ReadAll(late, Clock::now() + 5s);  // closed at once, with a 503 if it fits
  EXPECT_TRUE(got.empty() || got.rfind("HTTP/1.1 503 ", 0) == 0) << got;
  EXPECT_EQ(server->stats().connections_refused, 1u);
  held.clear();  // the slots free up again
  ASSERT_TRUE(WaitUntil([&] { return server->stats().open_connections == 0; }, 5s));
  EXPECT_TRUE(Call("GET", "http://" + server->address() + "/x", "", 2000ms).ok());
}

TEST(ServerLimits, ConnectionThatSendsNothingIsClosedAtTheHeaderTimeout) {
  ServerOptions o;
  o.header_timeout = 200ms;  // idle_timeout stays 30 s
  auto server = Start(o);
  ASSERT_TRUE(server);
  Socket s = ConnectFrom("127.0.0.1", server->port());
  ASSERT_TRUE(s.valid());
  EXPECT_EQ(ReadAll(s, Clock::now() + 10s), "");
  EXPECT_EQ(server->stats().header_timeouts, 1u);
  EXPECT_EQ(server->stats().open_connections, 0);
}

TEST(ServerLimits, HeaderTricklingInIsCutAtTheHeaderTimeout) {
  ServerOptions o;
  o.header_timeout = 300ms;
  auto server = Start(o);
  ASSERT_TRUE(server);
  Socket s = ConnectFrom("127.0.0.1", server->port());
  ASSERT_TRUE(s.valid());
  // One byte every 20 ms: each within the idle limit, the whole never done.
  const std::string slow = "GET /x HTTP/1.1\r\nX-Pad: " + std::string(4000, 'a');
  auto until = Clock::now() + 10s;
  size_t sent = 0;
  for (; sent < slow.size() && Clock::now() < until; ++sent) {
    if (!s.WriteAll(slow.substr(sent, 1), Clock::now() + 1s).ok()) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_LT(sent, slow.size()) << "the server kept reading a header for 80 s";
  std::string got = ReadAll(s, Clock::now() + 2s);
  EXPECT_TRUE(got.empty() || got.rfind("HTTP/1.1 408 ", 0) == 0) << got;
  EXPECT_EQ(server->stats().header_timeouts, 1u);
  EXPECT_EQ(server->stats().requests, 0u);
}

TEST(ServerLimits, KeepAliveWaitForTheNextRequestIsTheIdleTimeout) {
  ServerOptions o;
  o.header_timeout = 100ms;
  o.idle_timeout = 5s;
  auto server = Start(o);
  ASSERT_TRUE(server);
  Client c;
  ASSERT_TRUE(c.Call("GET", "http://" + server->address() + "/a", "", 2000ms).ok());
  std::this_thread::sleep_for(400ms);  // longer than header_timeout, shorter than idle_timeout
  auto again = c.Call("GET", "http://" + server->address() + "/b", "", 2000ms);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(server->stats().header_timeouts, 0u);
  EXPECT_EQ(server->stats().connections_accepted, 1u);  // the same connection
}

TEST(ServerLimits, RouteBodyLimitRefusesBeforeTheBody) {
  ServerOptions o;
  o.body_limit = [](const std::string& method, const std::string& path) -> uint64_t {
    return method == "POST" && path == "/small" ? 16 : UINT64_MAX;
  };
  auto server = Start(o);
  ASSERT_TRUE(server);
  const std::string base = "http://" + server->address();
  auto big = Call("POST", base + "/small?q=1", std::string(17, 'x'), 2000ms);
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->status, 413);
  auto fits = Call("POST", base + "/small", std::string(16, 'x'), 2000ms);
  ASSERT_TRUE(fits.ok());
  EXPECT_EQ(fits->status, 200);
  auto other = Call("POST", base + "/other", std::string(1000, 'x'), 2000ms);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 200);
  // The global cap stays: max_body_bytes (1 MiB by default) for every route.
  auto huge = Call("POST", base + "/other", std::string((1 << 20) + 1, 'x'), 5000ms);
  ASSERT_TRUE(huge.ok()) << huge.status().ToString();
  EXPECT_EQ(huge->status, 413);

  // Chunked: refused as the chunks exceed the route's limit.
  Socket s = ConnectFrom("127.0.0.1", server->port());
  ASSERT_TRUE(s.WriteAll("POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "20\r\n" + std::string(32, 'y') + "\r\n0\r\n\r\n",
                         Clock::now() + 2s)
                  .ok());
  std::string got = ReadAll(s, Clock::now() + 5s);
  EXPECT_EQ(got.rfind("HTTP/1.1 413 ", 0), 0u) << got;
}

}  // namespace
}  // namespace cm::http
