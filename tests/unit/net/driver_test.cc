// The Asio driver on loopback: datagrams between two drivers over a
// multicast group and unicast, messages over the TCP stream, timers that keep
// firing while the core's own multicast loops back, and a clean stop.
#include "net/driver.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <thread>

namespace cm::net {
namespace {

using proto::Address;
using proto::Effects;
using proto::Micros;
using proto::Transport;

Address RandomGroup() {
  std::random_device rd;
  uint32_t ip = (239u << 24) | (77u << 16) | ((rd() % 250) << 8) | (rd() % 250 + 1);
  return {ip, static_cast<uint16_t>(20000 + rd() % 30000)};
}

std::unique_ptr<Driver> Open(const Address& group) {
  DriverConfig c;
  c.group = group;
  auto d = Driver::Open(c);
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return d.ok() ? std::move(*d) : nullptr;
}

// Runs a driver on its own thread; if it has not finished within the
// deadline, SIGTERM stops it (the driver turns that into an error), so a
// broken driver fails the test instead of hanging it.
class Runner {
 public:
  Runner(Driver* d, CoreHandle* core, std::function<bool()> done)
      : fut_(std::async(std::launch::async, [=] { return d->Run(*core, {.done = done}); })) {}
  RunEnd Wait(std::chrono::seconds deadline = std::chrono::seconds(10)) {
    if (fut_.wait_for(deadline) != std::future_status::ready) {
      timed_out_ = true;
      kill(getpid(), SIGTERM);
    }
    return fut_.get();
  }
  bool timed_out() const { return timed_out_; }

 private:
  std::future<RunEnd> fut_;
  bool timed_out_ = false;
};

// Multicasts "ping" every 10 ms until a unicast "pong" comes back.
struct Pinger {
  Address group;
  std::atomic<bool> got_pong{false};
  void Start(Micros now, Effects* out) { OnTimer(now, out); }
  void OnDatagram(Micros now, const Address&, std::string_view bytes, Effects* out) {
    if (bytes == "pong") got_pong = true;
    out->wake_at = now + 10 * proto::kMillis;
  }
  void OnTimer(Micros now, Effects* out) {
    out->sends.push_back({group, "ping", Transport::kDatagram});
    out->wake_at = now + 10 * proto::kMillis;
  }
};

// Answers each "ping" heard on the group with a unicast "pong"; optionally
// sends a large message back over the stream instead.
struct Ponger {
  std::string stream_reply;
  std::atomic<int> pings{0};
  void Start(Micros, Effects* out) { out->wake_at = proto::kNever; }
  void OnDatagram(Micros, const Address& from, std::string_view bytes, Effects* out) {
    if (bytes != "ping") return;
    ++pings;
    out->sends.push_back({from, stream_reply.empty() ? "pong" : stream_reply,
                          stream_reply.empty() ? Transport::kDatagram : Transport::kStream});
  }
  void OnTimer(Micros, Effects*) {}
};

// Receives one stream message and keeps it.
struct StreamPinger : Pinger {
  std::string got;
  std::atomic<bool> done{false};
  void OnDatagram(Micros now, const Address&, std::string_view bytes, Effects* out) {
    if (bytes.size() > 4) {
      got = std::string(bytes);
      done = true;
    }
    out->wake_at = now + 10 * proto::kMillis;
  }
};

TEST(Driver, DeliversMulticastAndUnicastDatagramsBetweenTwoCores) {
  Address g = RandomGroup();
  auto a = Open(g), b = Open(g);
  ASSERT_TRUE(a && b);
  Pinger ping;
  ping.group = g;
  Ponger pong;
  CoreRef<Pinger> ra(&ping);
  CoreRef<Ponger> rb(&pong);
  Runner rub(b.get(), &rb, [&] { return ping.got_pong.load(); });
  Runner rua(a.get(), &ra, [&] { return ping.got_pong.load(); });
  EXPECT_TRUE(rua.Wait() == RunEnd::kDone);
  // The ponger's done() is checked after its own calls: one more ping ends it.
  EXPECT_TRUE(rub.Wait(std::chrono::seconds(2)) == RunEnd::kDone || rub.timed_out());
  EXPECT_TRUE(ping.got_pong);
  EXPECT_GE(pong.pings.load(), 1);
  EXPECT_GE(a->stats().datagrams_out, 1u);
}

TEST(Driver, CarriesALargeMessageOverTheStream) {
  Address g = RandomGroup();
  auto a = Open(g), b = Open(g);
  ASSERT_TRUE(a && b);
  StreamPinger ping;
  ping.group = g;
  Ponger pong;
  pong.stream_reply.resize(300000);
  for (size_t i = 0; i < pong.stream_reply.size(); ++i) pong.stream_reply[i] = static_cast<char>(i * 7 + 1);
  CoreRef<StreamPinger> ra(&ping);
  CoreRef<Ponger> rb(&pong);
  std::atomic<bool> stop_b{false};
  Runner rub(b.get(), &rb, [&] { return stop_b.load(); });
  Runner rua(a.get(), &ra, [&] { return ping.done.load(); });
  RunEnd sa = rua.Wait();
  stop_b = true;
  rub.Wait(std::chrono::seconds(2));
  EXPECT_EQ(sa, RunEnd::kDone);
  EXPECT_EQ(ping.got, pong.stream_reply);
}

// Multicasts on every tick; with loopback on, its own datagrams come back to
// its group socket and are dropped there. The timer must keep running: the
// driver once cancelled it when a batch held only our own datagrams.
struct Ticker {
  Address group;
  std::atomic<int> ticks{0};
  void Start(Micros now, Effects* out) { out->wake_at = now; }
  void OnDatagram(Micros, const Address&, std::string_view, Effects*) {}
  void OnTimer(Micros now, Effects* out) {
    ++ticks;
    for (int i = 0; i < 8; ++i) out->sends.push_back({group, "tick", Transport::kDatagram});
    out->wake_at = now + 2 * proto::kMillis;
  }
};

TEST(Driver, TimerKeepsFiringWhileOwnMulticastLoopsBack) {
  Address g = RandomGroup();
  auto a = Open(g);
  ASSERT_TRUE(a);
  Ticker t;
  t.group = g;
  CoreRef<Ticker> ra(&t);
  Runner ru(a.get(), &ra, [&] { return t.ticks >= 100; });
  RunEnd s = ru.Wait(std::chrono::seconds(5));
  EXPECT_FALSE(ru.timed_out()) << "only " << t.ticks << " ticks";
  EXPECT_EQ(s, RunEnd::kDone);
  EXPECT_EQ(a->stats().datagrams_in, 0u) << "our own multicast reached the core";
}

TEST(Driver, StopsCleanlyWhenDoneAndCanRunAgain) {
  Address g = RandomGroup();
  auto a = Open(g);
  ASSERT_TRUE(a);
  for (int round = 0; round < 2; ++round) {
    Ticker t;
    t.group = g;
    CoreRef<Ticker> ra(&t);
    auto start = std::chrono::steady_clock::now();
    Runner ru(a.get(), &ra, [&] { return t.ticks >= 5; });
    EXPECT_TRUE(ru.Wait(std::chrono::seconds(5)) == RunEnd::kDone);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_GE(t.ticks.load(), 5);
  }
}

// Idle until poked from outside the loop (Driver::Call from tick): the poke
// asks for a wake-up, and the timer it arms must fire.
struct Pokeable {
  std::atomic<int> pokes{0}, timers{0};
  void Start(Micros, Effects* out) { out->wake_at = proto::kNever; }
  void OnDatagram(Micros, const Address&, std::string_view, Effects*) {}
  void OnTimer(Micros, Effects* out) {
    ++timers;
    out->wake_at = proto::kNever;
  }
  void Poke(Micros now, Effects* out) {
    ++pokes;
    out->wake_at = now + proto::kMillis;
  }
};

TEST(Driver, CallFromTickAppliesTheCoresEffects) {
  Address g = RandomGroup();
  auto a = Open(g);
  ASSERT_TRUE(a);
  Pokeable p;
  CoreRef<Pokeable> ra(&p);
  Driver* d = a.get();
  auto fut = std::async(std::launch::async, [&] {
    return d->Run(ra, {.done = [&] { return p.timers >= 1; },
                       .tick = [&] {
                         if (p.pokes == 0) d->Call([&](Micros now, Effects* out) { p.Poke(now, out); });
                       }});
  });
  if (fut.wait_for(std::chrono::seconds(5)) != std::future_status::ready) kill(getpid(), SIGTERM);
  EXPECT_EQ(fut.get(), RunEnd::kDone);
  EXPECT_EQ(p.pokes.load(), 1);
  EXPECT_EQ(p.timers.load(), 1);
}

// Opened without a group, the core asks to join one (a typed effect) and
// then hears what is multicast there.
struct Joiner {
  Address group;
  std::atomic<int> heard{0};
  void Start(Micros, Effects* out) { out->groups.push_back({proto::GroupChange::Kind::kJoin, group}); }
  void OnDatagram(Micros, const Address&, std::string_view bytes, Effects*) {
    if (bytes == "hello") ++heard;
  }
  void OnTimer(Micros, Effects*) {}
};

// Multicasts "hello" to its group every 10 ms.
struct Hello {
  Address group;
  void Start(Micros now, Effects* out) { OnTimer(now, out); }
  void OnDatagram(Micros, const Address&, std::string_view, Effects*) {}
  void OnTimer(Micros now, Effects* out) {
    out->sends.push_back({group, "hello"});
    out->wake_at = now + 10 * proto::kMillis;
  }
};

TEST(Driver, JoinEffectSubscribesToAnotherGroup) {
  Address g = RandomGroup();
  auto a = Open(Address{});  // unicast only
  auto b = Open(Address{});
  ASSERT_TRUE(a && b);
  Joiner j{g};
  Hello h{g};
  CoreRef<Joiner> rj(&j);
  CoreRef<Hello> rh(&h);
  Runner ra(a.get(), &rj, [&] { return j.heard >= 1; });
  std::atomic<bool> stop{false};
  Runner rb(b.get(), &rh, [&] { return stop.load(); });
  EXPECT_EQ(ra.Wait(std::chrono::seconds(5)), RunEnd::kDone);
  stop = true;
  rb.Wait(std::chrono::seconds(2));
  EXPECT_GE(j.heard.load(), 1);
  EXPECT_EQ(a->stats().group_errors, 0u);
}

}  // namespace
}  // namespace cm::net
