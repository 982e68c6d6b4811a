#include "net/driver.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>

namespace cm::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using asio::ip::udp;

proto::Micros MonotonicMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

asio::ip::address_v4 V4(uint32_t ip) { return asio::ip::address_v4(ip); }
proto::Address ToAddr(const udp::endpoint& e) { return {e.address().to_v4().to_uint(), e.port()}; }
proto::Address ToAddr(const tcp::endpoint& e) { return {e.address().to_v4().to_uint(), e.port()}; }

// One outgoing TCP connection with a queue of framed messages.
struct OutStream {
  explicit OutStream(asio::io_context& io) : sock(io) {}
  tcp::socket sock;
  std::deque<std::string> queue;
  bool connecting = false, connected = false, writing = false, broken = false;
};

// One joined multicast group: its own socket, bound to the group's address.
struct GroupSock {
  explicit GroupSock(asio::io_context& io) : sock(io) {}
  udp::socket sock;
  proto::Address group;
};

// One accepted TCP connection being read.
struct InStream {
  explicit InStream(asio::io_context& io) : sock(io) {}
  tcp::socket sock;
  proto::Address peer;
  uint8_t len[4];
  std::string body;
};


int ReadSysctl(const char* path) {
  std::ifstream f(path);
  long v = 0;
  f >> v;
  return static_cast<int>(v);
}

void SizeBuffer(int fd, int opt, int force_opt, int want, const char* sysctl, std::vector<std::string>* warnings) {
  // Root may exceed rmem_max/wmem_max; others get what the cap allows.
  if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof want) != 0) setsockopt(fd, SOL_SOCKET, opt, &want, sizeof want);
  int got = 0;
  socklen_t len = sizeof got;
  getsockopt(fd, SOL_SOCKET, opt, &got, &len);
  if (got / 2 < want / 2 && opt == SO_RCVBUF) {  // the kernel reports double what it grants
    warnings->push_back("receive buffer capped at " + std::to_string(got / 2) + " bytes by " + sysctl + " (" +
                        std::to_string(ReadSysctl(sysctl)) + "); losses under load are likelier: sysctl -w " +
                        std::string(sysctl + 10) + "=" + std::to_string(want));
  }
}

}  // namespace

struct Driver::Impl {
  DriverConfig cfg;
  asio::io_context io;
  std::vector<std::shared_ptr<GroupSock>> groups;
  udp::socket uni_sock{io};
  tcp::acceptor acceptor{io};
  asio::steady_timer timer{io};
  asio::steady_timer ticker{io};
  asio::signal_set signals{io, SIGINT, SIGTERM};
  std::vector<std::string> warnings;
  proto::Address local;
  DriverStats stats;
  std::map<proto::Address, std::shared_ptr<OutStream>> out_streams;
  // Run state.
  CoreHandle* core = nullptr;
  RunHooks hooks;
  proto::Effects fx;
  proto::Micros epoch = 0;  // set by Open: the core's clock runs across Runs
  RunEnd result = RunEnd::kDone;
  bool stopping = false;
  std::array<char, 65536> ubuf;
  udp::endpoint ufrom;
  // recvmmsg batch for the group socket (multicast data is the bulk of all
  // traffic): one wake-up drains up to kBatch datagrams and the core's
  // effects are applied once for the lot.
  static constexpr int kBatch = 64;
  static constexpr size_t kSlot = 2048;  // > any datagram of ours (1472)
  std::vector<char> gbufs = std::vector<char>(kBatch * kSlot);
  std::array<mmsghdr, kBatch> gmsgs{};
  std::array<iovec, kBatch> giov{};
  std::array<sockaddr_in, kBatch> gaddr{};
  // SO_TIMESTAMPNS: the kernel's receive time of each datagram (wall clock).
  static constexpr size_t kCtl = CMSG_SPACE(sizeof(timespec));
  std::array<std::array<char, kCtl>, kBatch> gctl{};
  proto::Micros armed_at = proto::kNever;  // the timer's current deadline
  std::vector<const proto::Send*> dgrams;  // sendmmsg batch being built

  proto::Micros Now() const { return MonotonicMicros() - epoch; }

  void Apply() {
    for (const proto::GroupChange& g : fx.groups) ChangeGroup(g);
    for (proto::Send& s : fx.sends) {
      if (s.transport == proto::Transport::kStream) {
        FlushDatagrams();
        SendStream(s);
      } else if (s.transport == proto::Transport::kReport) {
        ++stats.reports_out;
        if (hooks.report) {
          hooks.report(s);
        } else {
          ++stats.report_errors;
        }
      } else {
        dgrams.push_back(&s);
        if (dgrams.size() == kBatch) FlushDatagrams();
      }
    }
    FlushDatagrams();
    if (hooks.after) hooks.after(fx);
    proto::Micros wake = fx.wake_at;
    fx.Clear();
    if (hooks.done && hooks.done()) return Stop(RunEnd::kDone);
    // Re-arming a timer costs a cancelled handler and a timerfd update; per
    // datagram that is most of a receiver's work, so only when it moved.
    if (wake == armed_at) return;
    armed_at = wake;
    if (wake == proto::kNever) {
      timer.cancel();
      return;
    }
    proto::Micros delay = std::max<proto::Micros>(0, wake - Now());
    timer.expires_after(std::chrono::microseconds(delay));
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      armed_at = proto::kNever;
      core->OnTimer(Now(), &fx);
      Apply();
    });
  }

  void Stop(RunEnd end) {
    if (stopping) return;
    stopping = true;
    result = end;
    io.stop();
  }

  // Opens, binds and joins one group's socket; SO_REUSEADDR so several
  // processes on one host can share the group.
  boost::system::error_code OpenGroup(proto::Address group, std::shared_ptr<GroupSock>* out) {
    boost::system::error_code ec;
    auto g = std::make_shared<GroupSock>(io);
    g->group = group;
    g->sock.open(udp::v4(), ec);
    if (!ec) g->sock.set_option(udp::socket::reuse_address(true), ec);
    if (!ec) g->sock.bind(udp::endpoint(V4(group.ip), group.port), ec);
    if (!ec) g->sock.set_option(asio::ip::multicast::join_group(V4(group.ip), V4(cfg.iface)), ec);
    if (ec) return ec;
    int on = 1;  // best effort: without stamps the queued time reads 0
    setsockopt(g->sock.native_handle(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    SizeBuffer(g->sock.native_handle(), SO_RCVBUF, SO_RCVBUFFORCE, cfg.rcvbuf, "/proc/sys/net/core/rmem_max",
               &warnings);
    *out = std::move(g);
    return ec;
  }

  void ChangeGroup(const proto::GroupChange& c) {
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g->group == c.group; });
    if (c.kind == proto::GroupChange::Kind::kLeave) {
      if (it == groups.end()) return;
      boost::system::error_code ec;
      (*it)->sock.close(ec);  // a pending wait ends with operation_aborted
      groups.erase(it);
      return;
    }
    if (it != groups.end() || !c.group.IsMulticast()) return;
    std::shared_ptr<GroupSock> g;
    if (OpenGroup(c.group, &g)) {
      ++stats.group_errors;
      return;
    }
    groups.push_back(g);
    ReadGroup(g);
  }

  // Sends the queued datagrams with sendmmsg, waiting for buffer space like
  // a blocking send would (asio keeps the descriptor non-blocking).
  void FlushDatagrams() {
    size_t n = dgrams.size(), done_n = 0;
    if (n == 0) return;
    std::array<mmsghdr, kBatch> msgs{};
    std::array<iovec, kBatch> iov{};
    std::array<sockaddr_in, kBatch> to{};
    for (size_t i = 0; i < n; ++i) {
      const proto::Send& s = *dgrams[i];
      to[i].sin_family = AF_INET;
      to[i].sin_addr.s_addr = htonl(s.to.ip);
      to[i].sin_port = htons(s.to.port);
      iov[i] = {const_cast<char*>(s.bytes.data()), s.bytes.size()};
      msgs[i].msg_hdr.msg_name = &to[i];
      msgs[i].msg_hdr.msg_namelen = sizeof to[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int fd = uni_sock.native_handle();
    while (done_n < n) {
      int r = sendmmsg(fd, &msgs[done_n], static_cast<unsigned>(n - done_n), 0);
      if (r > 0) {
        for (int i = 0; i < r; ++i) stats.bytes_out += dgrams[done_n + i]->bytes.size();
        stats.datagrams_out += r;
        done_n += r;
      } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS)) {
        pollfd p{fd, POLLOUT, 0};
        poll(&p, 1, 100);
      } else {
        ++stats.send_errors;  // this datagram (e.g. no route): skip it, keep the rest
        ++done_n;
      }
    }
    dgrams.clear();
  }

  void SendStream(const proto::Send& s) {
    auto& os = out_streams[s.to];
    if (!os || os->broken) os = std::make_shared<OutStream>(io);
    std::string framed(4, '\0');
    uint32_t n = static_cast<uint32_t>(s.bytes.size());
    for (int i = 0; i < 4; ++i) framed[i] = static_cast<char>(n >> (8 * i));
    framed += s.bytes;
    os->queue.push_back(std::move(framed));
    ++stats.streams_out;
    if (!os->connecting && !os->connected) {
      os->connecting = true;
      os->sock.async_connect(tcp::endpoint(V4(s.to.ip), s.to.port), [this, os](const boost::system::error_code& ec) {
        os->connecting = false;
        if (ec) {
          os->broken = true;  // the next message opens a new connection
          return;
        }
        os->connected = true;
        os->sock.set_option(tcp::no_delay(true));
        Pump(os);
      });
    } else if (os->connected) {
      Pump(os);
    }
  }

  void Pump(const std::shared_ptr<OutStream>& os) {
    if (os->writing || os->queue.empty() || os->broken) return;
    os->writing = true;
    asio::async_write(os->sock, asio::buffer(os->queue.front()),
                      [this, os](const boost::system::error_code& ec, size_t) {
                        os->writing = false;
                        if (ec) {
                          os->broken = true;
                          return;
                        }
                        os->queue.pop_front();
                        Pump(os);
                      });
  }

  void ReadGroup(const std::shared_ptr<GroupSock>& g) {
    g->sock.async_wait(udp::socket::wait_read, [this, g](const boost::system::error_code& ec) {
      if (ec || stopping || !g->sock.is_open()) return;
      DrainGroup(g);
    });
  }

  // Reads up to 4 batches, then yields to the other handlers (timers, the
  // unicast socket). asio's epoll is edge-triggered: when datagrams may be
  // left, come back through post() instead of waiting for a new edge.
  void DrainGroup(const std::shared_ptr<GroupSock>& g) {
    bool more = DrainBatches(g->sock.native_handle());
    if (stopping || !g->sock.is_open()) return;  // left during the batch
    if (more)
      asio::post(io, [this, g] {
        if (!stopping && g->sock.is_open()) DrainGroup(g);
      });
    else
      ReadGroup(g);
  }

  bool DrainBatches(int fd) {
    for (int round = 0; round < 4; ++round) {
      if (stopping) return false;
      for (int i = 0; i < kBatch; ++i) {
        giov[i] = {&gbufs[i * kSlot], kSlot};
        gmsgs[i].msg_hdr = {};
        gmsgs[i].msg_hdr.msg_name = &gaddr[i];
        gmsgs[i].msg_hdr.msg_namelen = sizeof gaddr[i];
        gmsgs[i].msg_hdr.msg_iov = &giov[i];
        gmsgs[i].msg_hdr.msg_iovlen = 1;
        gmsgs[i].msg_hdr.msg_control = gctl[i].data();
        gmsgs[i].msg_hdr.msg_controllen = kCtl;
      }
      int r = recvmmsg(fd, gmsgs.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (r <= 0) return false;
      proto::Micros now = Now();
      timespec wall{};
      clock_gettime(CLOCK_REALTIME, &wall);
      int delivered = 0;
      for (int i = 0; i < r; ++i) {
        if (gmsgs[i].msg_hdr.msg_flags & MSG_TRUNC) continue;  // not one of ours
        proto::Address from{ntohl(gaddr[i].sin_addr.s_addr), ntohs(gaddr[i].sin_port)};
        if (from == local) continue;  // our own multicast, looped back
        ++stats.datagrams_in;
        ++delivered;
        core->SetQueued(Queued(gmsgs[i].msg_hdr, wall));
        core->OnDatagram(now, from, std::string_view(&gbufs[i * kSlot], gmsgs[i].msg_len), &fx);
      }
      core->SetQueued(0);
      // Only after the core ran: fx.wake_at is its answer (an empty fx would
      // read as "no wake-up" and cancel the timer).
      if (delivered) Apply();  // may leave this very group: the caller checks
      if (r < kBatch || !IsGroupFd(fd)) return false;
    }
    return true;
  }

  // The time between the kernel's receive stamp and `wall` (now), in
  // [0, 10 s]; 0 without a stamp. A wall-clock step between the two reads
  // at worst as one wrong delay sample, clamped.
  static proto::Micros Queued(const msghdr& h, const timespec& wall) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
      timespec ts;
      std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
      int64_t us = (int64_t(wall.tv_sec) - int64_t(ts.tv_sec)) * 1'000'000 + (wall.tv_nsec - ts.tv_nsec) / 1000;
      return std::clamp<int64_t>(us, 0, 10 * proto::kSeconds);
    }
    return 0;
  }

  bool IsGroupFd(int fd) const {
    for (const auto& g : groups)
      if (g->sock.is_open() && g->sock.native_handle() == fd) return true;
    return false;
  }

  void ReadUnicast() {
    uni_sock.async_receive_from(asio::buffer(ubuf), ufrom, [this](const boost::system::error_code& ec, size_t n) {
      if (ec == asio::error::operation_aborted || stopping) return;
      if (!ec) Deliver(ToAddr(ufrom), std::string_view(ubuf.data(), n));
      ReadUnicast();
    });
  }

  void Deliver(const proto::Address& from, std::string_view bytes) {
    if (from == local) return;  // our own multicast, looped back
    ++stats.datagrams_in;
    core->OnDatagram(Now(), from, bytes, &fx);
    Apply();
  }

  void Accept() {
    auto in = std::make_shared<InStream>(io);
    acceptor.async_accept(in->sock, [this, in](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted || stopping) return;
      if (!ec) {
        boost::system::error_code e2;
        auto ep = in->sock.remote_endpoint(e2);
        if (!e2) {
          in->peer = ToAddr(ep);
          ReadLen(in);
        }
      }
      Accept();
    });
  }

  void ReadLen(const std::shared_ptr<InStream>& in) {
    asio::async_read(in->sock, asio::buffer(in->len), [this, in](const boost::system::error_code& ec, size_t) {
      if (ec || stopping) return;
      uint32_t n = in->len[0] | in->len[1] << 8 | in->len[2] << 16 | static_cast<uint32_t>(in->len[3]) << 24;
      if (n > (1u << 20)) return;  // not ours: drop the connection
      in->body.resize(n);
      asio::async_read(in->sock, asio::buffer(in->body), [this, in](const boost::system::error_code& ec2, size_t) {
        if (ec2 || stopping) return;
        ++stats.streams_in;
        core->OnDatagram(Now(), in->peer, in->body, &fx);
        Apply();
        ReadLen(in);
      });
    });
  }

  void Tick() {
    ticker.expires_after(std::chrono::milliseconds(200));
    ticker.async_wait([this](const boost::system::error_code& ec) {
      if (ec || stopping) return;
      if (hooks.tick) hooks.tick();
      if (stopping) return;
      if (hooks.done && hooks.done()) return Stop(RunEnd::kDone);
      Tick();
    });
  }
};

Driver::Driver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Driver::~Driver() = default;
proto::Address Driver::local() const { return impl_->local; }
const std::vector<std::string>& Driver::warnings() const { return impl_->warnings; }
const DriverStats& Driver::stats() const { return impl_->stats; }
proto::Micros Driver::now() const { return impl_->Now(); }

void Driver::Call(const std::function<void(proto::Micros now, proto::Effects* out)>& f) {
  Impl& d = *impl_;
  if (d.stopping || !d.core) return;
  f(d.Now(), &d.fx);
  d.Apply();
}


Result<std::unique_ptr<Driver>> Driver::Open(const DriverConfig& cfg) {
  auto impl = std::make_unique<Impl>();
  impl->cfg = cfg;
  boost::system::error_code ec;
  auto fail = [&](const std::string& what) { return Error(Code::kIo, what + ": " + ec.message()); };
  udp::socket& us = impl->uni_sock;
  us.open(udp::v4(), ec);
  if (ec) return fail("udp socket");
  // The unicast port number is shared with the TCP listener: retry until both are free.
  for (int attempt = 0; attempt < 50; ++attempt) {
    ec.clear();
    us.bind(udp::endpoint(V4(cfg.iface), cfg.unicast_port), ec);
    if (ec) return fail("bind " + proto::Address{cfg.iface, cfg.unicast_port}.ToString());
    uint16_t port = us.local_endpoint().port();
    impl->acceptor.open(tcp::v4(), ec);
    impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    impl->acceptor.bind(tcp::endpoint(V4(cfg.iface), port), ec);
    if (!ec) impl->acceptor.listen(64, ec);
    if (!ec) break;
    impl->acceptor.close();
    if (cfg.unicast_port != 0) return fail("tcp listen");
    us.close();
    us.open(udp::v4(), ec);
  }
  if (ec) return fail("tcp listen");
  impl->local = {cfg.iface, us.local_endpoint().port()};
  us.set_option(asio::ip::multicast::outbound_interface(V4(cfg.iface)), ec);
  if (ec) return fail("IP_MULTICAST_IF");
  us.set_option(asio::ip::multicast::enable_loopback(cfg.loop), ec);
  us.set_option(asio::ip::multicast::hops(cfg.ttl), ec);
  SizeBuffer(us.native_handle(), SO_SNDBUF, SO_SNDBUFFORCE, cfg.sndbuf, "/proc/sys/net/core/wmem_max", &impl->warnings);
  SizeBuffer(us.native_handle(), SO_RCVBUF, SO_RCVBUFFORCE, cfg.rcvbuf / 4, "/proc/sys/net/core/rmem_max",
             &impl->warnings);
  if (cfg.group.ip != 0) {
    std::shared_ptr<GroupSock> g;
    ec = impl->OpenGroup(cfg.group, &g);
    if (ec) return fail("join " + cfg.group.ToString());
    impl->groups.push_back(std::move(g));
  }
  impl->epoch = MonotonicMicros();
  return std::unique_ptr<Driver>(new Driver(std::move(impl)));
}

RunEnd Driver::Run(CoreHandle& core, const RunHooks& hooks) {
  Impl& d = *impl_;
  d.core = &core;
  d.hooks = hooks;
  d.stopping = false;
  d.result = RunEnd::kDone;
  d.io.restart();
  d.timer.cancel();  // a wait left from an earlier Run
  d.armed_at = proto::kNever;
  d.signals.async_wait([&d](const boost::system::error_code& ec, int) {
    if (ec || d.stopping) return;
    if (d.hooks.on_signal) d.hooks.on_signal();
    d.stopping = false;  // on_signal's effects may have met done(): the signal still decides
    d.Stop(RunEnd::kInterrupted);
  });
  for (const auto& g : d.groups) d.ReadGroup(g);
  d.ReadUnicast();
  d.Accept();
  d.Tick();
  core.Start(d.Now(), &d.fx);
  d.Apply();
  if (!d.stopping) d.io.run();
  // Flush queued stream messages briefly so a last unicast repair is not lost.
  d.stopping = false;
  d.io.restart();
  bool pending = false;
  for (auto& [a, os] : d.out_streams) pending |= !os->queue.empty() && !os->broken;
  if (pending) d.io.run_for(std::chrono::seconds(2));
  d.signals.cancel();
  return d.result;
}

}  // namespace cm::net
