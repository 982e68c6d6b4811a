// The receiver's queueing delay is measured to each datagram's arrival, not
// to the moment the process read it (docs/protocol/mcast.md, "Rate"): a
// receiver process that is not scheduled for a while reads a burst of
// datagrams late, and without the kernel's receive stamps (the driver's
// set_queued) that lateness reads as a queue in the network, enough to name
// a healthy receiver slow on a loaded host.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "mcast/memory_store.h"
#include "mcast/receiver.h"
#include "mcast/sender.h"
#include "mcast/wire.h"

namespace cm::mcast {
namespace {

using proto::Address;
using proto::Effects;
using proto::kMillis;
using proto::kNever;
using proto::kSeconds;
using proto::Micros;

const Address kGroup{0xef010204, 9000};
const Address kSenderAddr{0x0a000001, 5000};

GroupKey Key() {
  GroupKey k{};
  k.fill(9);
  return k;
}

// Runs one session on a loss-free loop. From `lag_from` on, the receiver
// reads every datagram `lag` late (its process was descheduled, the data
// waited in the socket queue); with `stamps` it is told so, as the driver
// does from SO_TIMESTAMPNS. Returns the largest queueing delay it reported.
uint32_t MaxReportedDelay(bool stamps, Micros lag_from, Micros lag) {
  std::string content(400'000, 'x');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7919 % 251);
  MemorySource src(content);
  SenderConfig sc;
  sc.id = "gl1";
  sc.name = "f.bin";
  sc.size = content.size();
  sc.group = kGroup;
  sc.key = Key();
  sc.seed = 3;
  sc.receivers = {"web1"};
  sc.frame_size = 1000;
  sc.block_k = 8;
  sc.linger = 100 * kMillis;
  sc.rate_bps = 20'000'000;  // 400 frames: 0.16 s of sending, several reports
  Sender sender(sc, &src);
  ReceiverConfig rc;
  rc.id = "web1";
  rc.group = kGroup;
  rc.key = Key();
  rc.one_session = true;
  MemoryStore store;
  Receiver receiver(rc, &store);

  uint32_t worst = 0;
  std::vector<std::string> to_recv, to_send;
  Effects fs, fr;
  auto take = [&](Effects& fx, std::vector<std::string>* q) {
    for (auto& s : fx.sends) q->push_back(s.bytes);
  };
  auto from_receiver = [&](Effects& fx) {
    for (auto& s : fx.sends) {
      Message m;
      GroupKey k = Key();
      if (Parse(s.bytes, &k, &m) == ParseResult::kOk && m.type == Type::kStatus)
        worst = std::max(worst, m.status.qdelay_us);
      to_send.push_back(s.bytes);
    }
  };
  Micros now = 0;
  sender.Start(now, &fs);
  take(fs, &to_recv);
  receiver.Start(now, &fr);
  from_receiver(fr);
  Micros ws = fs.wake_at, wr = fr.wake_at;
  // The receiver's clock: the sender's plus the read lag once it began
  // (never backwards: the lag only grows).
  auto rnow = [&](Micros t) { return t >= lag_from ? t + lag : t; };
  while (now < 30 * kSeconds && !sender.finished()) {
    while (!to_recv.empty() || !to_send.empty()) {
      auto rq = std::move(to_recv);
      to_recv.clear();
      for (auto& b : rq) {
        fr.Clear();
        receiver.set_queued(stamps && now >= lag_from ? lag : 0);
        receiver.OnDatagram(rnow(now), kSenderAddr, b, &fr);
        receiver.set_queued(0);
        if (fr.wake_at != kNever) wr = fr.wake_at - (rnow(now) - now);
        from_receiver(fr);
      }
      auto sq = std::move(to_send);
      to_send.clear();
      for (auto& b : sq) {
        fs.Clear();
        sender.OnDatagram(now, Address{0x0a000101, 5000}, b, &fs);
        ws = fs.wake_at;
        take(fs, &to_recv);
      }
    }
    Micros next = std::min(ws, wr);
    if (next == kNever) break;
    now = std::max(now + 1, next);
    if (now >= ws) {
      fs.Clear();
      sender.OnTimer(now, &fs);
      ws = fs.wake_at;
      take(fs, &to_recv);
    }
    if (now >= wr) {
      fr.Clear();
      receiver.OnTimer(rnow(now), &fr);
      wr = fr.wake_at == kNever ? kNever : fr.wake_at - (rnow(now) - now);
      from_receiver(fr);
    }
  }
  EXPECT_TRUE(sender.finished());
  EXPECT_EQ(sender.outcome(), Outcome::kAllDone);
  return worst;
}

TEST(McastQueued, TimeInTheSocketQueueIsNotNetworkDelay) {
  // Without lag nothing queues; a 40 ms read lag from 50 ms on reads as a
  // 40 ms queue unless the receiver is told the datagrams waited that long.
  EXPECT_LT(MaxReportedDelay(false, kNever, 0), 2'000u);
  EXPECT_GE(MaxReportedDelay(false, 50 * kMillis, 40 * kMillis), 39'000u);
  EXPECT_LT(MaxReportedDelay(true, 50 * kMillis, 40 * kMillis), 2'000u);
}

}  // namespace
}  // namespace cm::mcast
