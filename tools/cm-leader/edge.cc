#include "edge.h"

#include <poll.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>

#include "util/exit_codes.h"
#include "util/json.h"
#include "util/log.h"

namespace cm::leader_tool {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
using proto::Micros;

Micros Now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

asio::ip::address_v4 V4(uint32_t ip) { return asio::ip::address_v4(ip); }

void OpenGroupSocket(udp::socket* s, proto::Address group, uint32_t iface) {
  s->open(udp::v4());
  s->set_option(asio::socket_base::reuse_address(true));
  s->bind(udp::endpoint(asio::ip::address_v4::any(), group.port));
  s->set_option(asio::ip::multicast::join_group(V4(group.ip), V4(iface)));
  s->set_option(asio::ip::multicast::outbound_interface(V4(iface)));
  s->set_option(asio::ip::multicast::enable_loopback(true));
}

// Runs a hook with /bin/sh, detached (a grandchild nobody waits for). Its
// stdout goes to our stderr: stdout carries only the --json events.
void RunHook(const std::string& cmd, const std::map<std::string, std::string>& env) {
  if (cmd.empty()) return;
  pid_t pid = fork();
  if (pid == 0) {
    if (fork() != 0) _exit(0);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (pid > 0) waitpid(pid, nullptr, 0);
}

// How often the host is measured for the facts and the damped priority.
constexpr Micros kSamplePeriod = 5 * proto::kSeconds;

// Reads the load average, CPU count and free disk under the content root.
void Measure(const std::string& content_root, leader::Facts* f, leader::Measurements* m) {
  struct statvfs sv;
  if (statvfs(content_root.c_str(), &sv) == 0) f->free_disk_mb = uint64_t(sv.f_bavail) * sv.f_frsize >> 20;
  m->free_disk_mb = f->free_disk_mb;
  std::ifstream la("/proc/loadavg");
  double load = 0;
  if (la >> load) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    m->load_per_cpu = load / double(cpus > 0 ? cpus : 1);
    f->cpu_permille = static_cast<uint32_t>(std::min(1000.0, 1000.0 * m->load_per_cpu));
  }
}

std::string Join(const std::vector<uint64_t>& ids) {
  std::string s;
  for (uint64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

class Node {
 public:
  explicit Node(RunOptions o) : o_(std::move(o)), core_(o_.cfg), sock_(io_), timer_(io_), signals_(io_, SIGTERM, SIGINT) {}

  int Run() {
    OpenGroupSocket(&sock_, o_.cfg.control, o_.cfg.self.ip);
    joined_ = o_.cfg.control;
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (ec) return;
      proto::Effects fx;
      core_.Resign(Now(), &fx);
      Apply(fx);
      Report();
      io_.stop();
    });
    started_at_ = Now();
    Sample();
    proto::Effects fx;
    core_.Start(Now(), &fx);
    Apply(fx);
    Receive();
    io_.run();
    return kExitOk;
  }

 private:
  void Receive() {
    sock_.async_receive_from(asio::buffer(buf_), from_, [this](const boost::system::error_code& ec, size_t n) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        proto::Effects fx;
        proto::Address from{from_.address().to_v4().to_uint(), from_.port()};
        core_.OnDatagram(Now(), from, std::string_view(buf_.data(), n), &fx);
        Apply(fx);
      }
      Receive();
    });
  }

  void Apply(proto::Effects& fx) {
    for (const std::string& ev : fx.events) log::Debug(ev);
    for (const proto::GroupChange& g : fx.groups) {
      if (g.kind == proto::GroupChange::Kind::kJoin && g.group.port == joined_.port) {
        boost::system::error_code ec;
        sock_.set_option(asio::ip::multicast::join_group(V4(g.group.ip), V4(o_.cfg.self.ip)), ec);
      }
    }
    for (const proto::Send& s : fx.sends) {
      if (s.transport != proto::Transport::kDatagram) {
        SendStream(s);
      } else {
        boost::system::error_code ec;
        sock_.send_to(asio::buffer(s.bytes), udp::endpoint(V4(s.to.ip), s.to.port), 0, ec);
      }
    }
    Report();
    if (fx.wake_at != proto::kNever) {
      timer_.expires_after(std::chrono::microseconds(std::max<Micros>(0, fx.wake_at - Now())));
      timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec) return;
        if (Now() - last_sample_ >= kSamplePeriod) Sample();
        proto::Effects f2;
        core_.OnTimer(Now(), &f2);
        Apply(f2);
      });
    } else {
      timer_.cancel();
    }
  }

  void Sample() {
    last_sample_ = Now();
    leader::Facts f = o_.facts;
    leader::Measurements m;
    Measure(o_.content_root, &f, &m);
    m.uptime = Now() - started_at_;
    core_.SetFacts(f);
    core_.Sample(m);
  }

  void SendStream(const proto::Send& s) {
    auto sock = std::make_shared<asio::ip::tcp::socket>(io_);
    auto data = std::make_shared<std::string>(s.bytes);
    asio::ip::tcp::endpoint ep(V4(s.to.ip), s.to.port);
    sock->async_connect(ep, [sock, data](const boost::system::error_code& ec) {
      if (ec) {
        log::Warn("report to CCM: " + ec.message());
        return;
      }
      asio::async_write(*sock, asio::buffer(*data), [sock, data](const boost::system::error_code&, size_t) {});
    });
  }

  // Prints a JSON event and runs hooks when the visible state changes.
  void Report() {
    const auto st = core_.state();
    const uint64_t leader = core_.leader(), epoch = core_.epoch();
    const auto members = core_.members();
    const bool state_changed = st != last_state_ || leader != last_leader_ || epoch != last_epoch_;
    const bool members_changed = members != last_members_;
    if (!state_changed && !members_changed && started_) return;
    std::map<std::string, std::string> env = {
        {"CM_LEADER_STATE", leader::StateName(st)},
        {"CM_LEADER_ID", std::to_string(leader)},
        {"CM_LEADER_EPOCH", std::to_string(epoch)},
        {"CM_LEADER_SELF", std::to_string(core_.id())},
        {"CM_LEADER_SEGMENT", o_.cfg.segment},
        {"CM_LEADER_ADDR", leader ? core_.leader_addr().ToString() : ""},
        {"CM_LEADER_MEMBERS", Join(members)},
        {"CM_LEADER_MEMBER_COUNT", std::to_string(members.size())},
    };
    if (o_.json) {
      JsonArray ids;
      for (uint64_t id : members) ids.Raw(std::to_string(id));
      std::printf("%s\n", JsonObject()
                              .Str("event", members_changed && !state_changed ? "members" : "state")
                              .Str("state", leader::StateName(st))
                              .Uint("self", core_.id())
                              .Uint("leader", leader)
                              .Str("leader_address", leader ? core_.leader_addr().ToString() : "")
                              .Uint("epoch", epoch)
                              .Uint("priority", core_.priority())
                              .Raw("members", ids.Build())
                              .Int("time_us", std::chrono::duration_cast<std::chrono::microseconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count())
                              .Build()
                              .c_str());
      std::fflush(stdout);
    }
    if (started_) {
      const bool was = last_state_ == leader::State::kLeader, is = st == leader::State::kLeader;
      if (is && !was) RunHook(o_.on_elected, env);
      if (was && !is) RunHook(o_.on_demoted, env);
      if (members_changed) RunHook(o_.on_member_change, env);
    }
    started_ = true;
    last_state_ = st;
    last_leader_ = leader;
    last_epoch_ = epoch;
    last_members_ = members;
  }

 public:
  RunOptions o_;

 private:
  leader::Election core_;
  asio::io_context io_;
  udp::socket sock_;
  asio::steady_timer timer_;
  asio::signal_set signals_;
  std::array<char, 65536> buf_{};
  udp::endpoint from_;
  proto::Address joined_;
  Micros last_sample_ = 0, started_at_ = 0;
  bool started_ = false;
  leader::State last_state_ = leader::State::kUnknown;
  uint64_t last_leader_ = 0, last_epoch_ = 0;
  std::vector<uint64_t> last_members_;
};

}  // namespace

std::optional<proto::Address> LocalAddressFor(proto::Address group) {
  try {
    asio::io_context io;
    udp::socket s(io, udp::v4());
    s.connect(udp::endpoint(V4(group.ip), group.port));
    auto ep = s.local_endpoint();
    return proto::Address{ep.address().to_v4().to_uint(), group.port};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

int RunNode(RunOptions o) {
  try {
    Node n(std::move(o));
    return n.Run();
  } catch (const std::exception& e) {
    log::Error(std::string("run: ") + e.what());
    return kExitFailure;
  }
}

int Who(const WhoOptions& o) {
  try {
    asio::io_context io;
    udp::socket s(io);
    auto local = LocalAddressFor(o.group);
    OpenGroupSocket(&s, o.group, o.interface ? *o.interface : local ? local->ip : 0);
    s.non_blocking(true);
    const Micros start = Now();
    Micros deadline = start + o.timeout;
    std::optional<leader::Message> best;
    std::vector<uint64_t> members;
    bool have_members = false;
    std::array<char, 65536> buf{};
    const GroupKey* key = o.key ? &*o.key : nullptr;
    while (Now() < deadline) {
      pollfd pfd{s.native_handle(), POLLIN, 0};
      int ms = static_cast<int>(std::max<Micros>(1, (deadline - Now()) / 1000));
      if (::poll(&pfd, 1, ms) <= 0) continue;
      udp::endpoint from;
      boost::system::error_code ec;
      size_t n = s.receive_from(asio::buffer(buf), from, 0, ec);
      if (ec) continue;
      auto d = leader::Decode(std::string_view(buf.data(), n), key);
      if (!d) continue;
      const leader::Message& m = d->msg;
      if (m.type == leader::MsgType::kAlive) {
        if (!best || m.epoch > best->epoch) {
          best = m;
          have_members = false;
        }
        // Listen a little longer to catch a competing, newer leader.
        const Micros extra = o.members ? 6 * Micros(m.interval_us) : Micros(m.interval_us) * 11 / 10;
        deadline = std::min(deadline, Now() + extra);
        if (o.members && have_members) break;
      } else if (m.type == leader::MsgType::kMembers && best && m.sender == best->sender) {
        members = m.members;
        have_members = true;
        if (o.members) break;
      }
    }
    if (!best) {
      if (o.json) std::printf("{\"leader\":null}\n");
      log::Info("no leader heard");
      return kExitNotFound;
    }
    if (o.json) {
      JsonObject j;
      j.Uint("leader", best->sender)
          .Str("address", best->addr.ToString())
          .Uint("epoch", best->epoch)
          .Uint("priority", best->priority)
          .Uint("interval_us", best->interval_us)
          .Uint("member_count", best->member_count);
      if (o.members) {
        JsonArray ids;
        for (uint64_t id : members) ids.Raw(std::to_string(id));
        j.Raw("members", ids.Build());
      }
      std::printf("%s\n", j.Build().c_str());
    } else {
      std::printf("%llu %s epoch %llu\n", static_cast<unsigned long long>(best->sender),
                  best->addr.ToString().c_str(), static_cast<unsigned long long>(best->epoch));
      if (o.members)
        for (uint64_t id : members) std::printf("member %llu\n", static_cast<unsigned long long>(id));
    }
    return kExitOk;
  } catch (const std::exception& e) {
    log::Error(std::string("who: ") + e.what());
    return kExitFailure;
  }
}

int ReportSink(const std::string& listen) {
  proto::Address a;
  if (!proto::ParseAddress(listen, &a)) {
    log::Error("report-sink: bad --listen address: " + listen);
    return kExitUsage;
  }
  try {
    asio::io_context io;
    asio::ip::tcp::acceptor acc(io, asio::ip::tcp::endpoint(V4(a.ip), a.port));
    for (;;) {
      asio::ip::tcp::socket sock(io);
      acc.accept(sock);
      asio::streambuf sb;
      boost::system::error_code ec;
      asio::read(sock, sb, ec);  // until the leader closes
      std::string data(asio::buffers_begin(sb.data()), asio::buffers_end(sb.data()));
      std::fwrite(data.data(), 1, data.size(), stdout);
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    log::Error(std::string("report-sink: ") + e.what());
    return kExitFailure;
  }
}

}  // namespace cm::leader_tool
