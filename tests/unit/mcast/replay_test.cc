// Replay defence of keyed cm-mcast sessions (docs/protocol/mcast.md,
// "Replay"): a captured session replayed later never delivers its object, and
// a daemon holding a newer version never replaces it with a replayed older one.
// The cores run here directly on a loss-free loop of virtual time; every
// datagram the sender multicasts is recorded, as an attacker on the LAN would.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "mcast/memory_store.h"
#include "mcast/receiver.h"
#include "mcast/sender.h"

namespace cm::mcast {
namespace {

using proto::Address;
using proto::Effects;
using proto::kMillis;
using proto::kNever;
using proto::kSeconds;
using proto::Micros;

const Address kGroup{0xef010203, 9000};
const Address kSenderAddr{0x0a000001, 5000};
const Address kRecvAddr{0x0a000101, 5000};

GroupKey Key() {
  GroupKey k{};
  k.fill(7);
  return k;
}

struct Link {
  Sender* sender = nullptr;  // may be null (a replay has no live sender)
  Receiver* receiver = nullptr;
  std::vector<std::string> captured;  // every multicast datagram of the sender
  std::vector<std::string> alerts;    // the receiver's
};

// Runs sender and receiver until the sender finished (or `until`); returns the end time.
Micros RunSession(Link* l, Micros now, Micros until) {
  Effects fs, fr;
  std::vector<proto::Send> to_recv, to_send;
  auto take = [&](Effects& fx, bool from_sender) {
    for (auto& s : fx.sends) {
      if (from_sender) {
        if (s.to == kGroup) l->captured.push_back(s.bytes);
        to_recv.push_back(s);
      } else {
        to_send.push_back(s);
      }
    }
    for (auto& a : fx.alerts) l->alerts.push_back(a);
  };
  Micros ws = kNever, wr = kNever;
  fs.Clear();
  l->sender->Start(now, &fs);
  ws = fs.wake_at;
  take(fs, true);
  fr.Clear();
  l->receiver->Start(now, &fr);
  wr = fr.wake_at;
  take(fr, false);
  while (now < until && !l->sender->finished()) {
    while (!to_recv.empty() || !to_send.empty()) {
      auto rq = std::move(to_recv);
      to_recv.clear();
      for (auto& s : rq) {
        fr.Clear();
        l->receiver->OnDatagram(now, kSenderAddr, s.bytes, &fr);
        wr = fr.wake_at;
        take(fr, false);
      }
      auto sq = std::move(to_send);
      to_send.clear();
      for (auto& s : sq) {
        fs.Clear();
        l->sender->OnDatagram(now, kRecvAddr, s.bytes, &fs);
        ws = fs.wake_at;
        take(fs, true);
      }
    }
    Micros next = std::min(ws, wr);
    if (next == kNever) break;
    now = std::max(now + 1, next);
    if (now >= ws) {
      fs.Clear();
      l->sender->OnTimer(now, &fs);
      ws = fs.wake_at;
      take(fs, true);
    }
    if (now >= wr) {
      fr.Clear();
      l->receiver->OnTimer(now, &fr);
      wr = fr.wake_at;
      take(fr, false);
    }
  }
  return now;
}

// Feeds recorded datagrams to a receiver from `now`, 1 ms apart, and lets it
// run its timers to the end (returns the alerts).
std::vector<std::string> Replay(Receiver* r, const std::vector<std::string>& datagrams, Micros now) {
  std::vector<std::string> alerts;
  Effects fx;
  for (const auto& d : datagrams) {
    fx.Clear();
    r->OnDatagram(now, kSenderAddr, d, &fx);
    for (auto& a : fx.alerts) alerts.push_back(a);
    now += kMillis;
  }
  fx.Clear();
  r->OnTimer(now + 60 * kSeconds, &fx);
  return alerts;
}

SenderConfig SenderCfg(const std::string& name, size_t size, uint64_t seed) {
  SenderConfig c;
  c.id = "gl1";
  c.name = name;
  c.size = size;
  c.group = kGroup;
  c.key = Key();
  c.seed = seed;
  c.receivers = {"web1"};
  c.frame_size = 1000;
  c.block_k = 8;
  c.linger = 100 * kMillis;
  return c;
}

ReceiverConfig RecvCfg(bool daemon) {
  ReceiverConfig c;
  c.id = "web1";
  c.group = kGroup;
  c.key = Key();
  c.one_session = !daemon;
  return c;
}

std::string Bytes(char fill, size_t n) { return std::string(n, fill); }

// Sends `content` as `name` to r (at `now`), recording the datagrams.
Micros SendTo(Receiver* r, const std::string& name, const std::string& content, uint64_t seed, Micros now,
              std::vector<std::string>* captured) {
  MemorySource src(content);
  Sender s(SenderCfg(name, content.size(), seed), &src);
  Link l{&s, r, {}, {}};
  now = RunSession(&l, now, now + 30 * kSeconds);
  EXPECT_TRUE(s.finished());
  EXPECT_EQ(s.outcome(), Outcome::kAllDone);
  if (captured) *captured = l.captured;
  return now;
}

TEST(McastReplay, SessionReplayedLaterIsRefusedByAReceiverThatNeverSawIt) {
  std::string v1 = Bytes('1', 20000);
  MemoryStore first;
  Receiver r1(RecvCfg(false), &first);
  std::vector<std::string> captured;
  Micros end = SendTo(&r1, "a.cma", v1, 11, 1000 * kSeconds, &captured);
  ASSERT_EQ(first.objects()["a.cma"], v1);
  // 15 s later a receiver that never heard the session gets the recording.
  MemoryStore later;
  Receiver r2(RecvCfg(false), &later);
  auto alerts = Replay(&r2, captured, end + 15 * kSeconds);
  EXPECT_TRUE(later.objects().empty());
  EXPECT_EQ(later.creates, 0);
  EXPECT_TRUE(r2.results().empty());
  EXPECT_GT(r2.replays_refused(), 0u);
  ASSERT_EQ(alerts.size(), 1u);  // one alert per run, not per datagram
  EXPECT_NE(alerts[0].find("replay window"), std::string::npos) << alerts[0];
}

TEST(McastReplay, DaemonKeepsTheNewerVersionWhenAnOlderSessionIsReplayedAtOnce) {
  MemoryStore store;
  Receiver daemon(RecvCfg(true), &store);
  std::string v1 = Bytes('1', 20000), v2 = Bytes('2', 20000);
  std::vector<std::string> captured;
  Micros t = SendTo(&daemon, "a.cma", v1, 11, 1000 * kSeconds, &captured);
  t = SendTo(&daemon, "a.cma", v2, 12, t + kSeconds, nullptr);
  ASSERT_EQ(store.objects()["a.cma"], v2);
  int creates = store.creates;
  size_t results = daemon.results().size();
  // Within the freshness window: the run already completed here.
  auto alerts = Replay(&daemon, captured, t + 100 * kMillis);
  EXPECT_EQ(store.objects()["a.cma"], v2);
  EXPECT_EQ(store.creates, creates);
  EXPECT_EQ(daemon.results().size(), results);
  ASSERT_FALSE(alerts.empty());
  EXPECT_NE(alerts[0].find("already completed"), std::string::npos) << alerts[0];
}

TEST(McastReplay, RestartedDaemonRefusesASessionOlderThanTheOneThatStoredTheName) {
  MemoryStore store;  // the directory (and its session record) outlives the daemon
  std::string v1 = Bytes('1', 20000), v2 = Bytes('2', 20000);
  std::vector<std::string> captured;
  Micros t;
  {
    Receiver daemon(RecvCfg(true), &store);
    t = SendTo(&daemon, "a.cma", v1, 11, 1000 * kSeconds, &captured);
    t = SendTo(&daemon, "a.cma", v2, 12, t + kSeconds, nullptr);
  }
  ASSERT_EQ(store.objects()["a.cma"], v2);
  Receiver restarted(RecvCfg(true), &store);
  auto alerts = Replay(&restarted, captured, t + 100 * kMillis);
  EXPECT_EQ(store.objects()["a.cma"], v2);
  EXPECT_TRUE(restarted.results().empty());
  ASSERT_FALSE(alerts.empty());
  EXPECT_NE(alerts[0].find("started before"), std::string::npos) << alerts[0];
}

TEST(McastReplay, ClocksWithinTheWindowStillDeliver) {
  MemoryStore store;
  ReceiverConfig rc = RecvCfg(false);
  rc.wall_offset = 4 * kSeconds;  // our clock 4 s ahead of the sender's
  Receiver r(rc, &store);
  std::string v = Bytes('x', 30000);
  SendTo(&r, "b.cma", v, 5, 1000 * kSeconds, nullptr);
  EXPECT_EQ(store.objects()["b.cma"], v);
  EXPECT_EQ(r.replays_refused(), 0u);
}

TEST(McastReplay, ClocksFurtherApartThanTheWindowAreRefused) {
  MemoryStore store;
  ReceiverConfig rc = RecvCfg(false);
  rc.wall_offset = 11 * kSeconds;
  Receiver r(rc, &store);
  MemorySource src(Bytes('x', 30000));
  Sender s(SenderCfg("b.cma", 30000, 5), &src);
  Link l{&s, &r, {}, {}};
  RunSession(&l, 1000 * kSeconds, 1003 * kSeconds);
  EXPECT_TRUE(store.objects().empty());
  EXPECT_GT(r.replays_refused(), 0u);
}

}  // namespace
}  // namespace cm::mcast
