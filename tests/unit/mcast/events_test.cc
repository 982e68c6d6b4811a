// cm-mcast --json: every line the cores emit becomes a named event with
// typed fields. The table pins each line's record; the simulations run the
// cores (sender, backup taking over, receivers under loss, a server asked
// by want lists) and fail on any line that no pattern knows, so a core that
// changes its wording without the table (and docs/protocol/mcast.md) fails here.
#include "mcastrun/events.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "mcast/memory_store.h"
#include "mcast/node.h"
#include "sim/simulator.h"
#include "util/json_value.h"

namespace cm::mcastrun {
namespace {

using proto::Address;
using proto::kMillis;
using proto::kSeconds;

struct Case {
  Role role;
  const char* line;
  const char* record;  // without v, role and t
};

const Case kCases[] = {
    {Role::kSender, "start session 7 a b.bin size 3000 rate 500000000",
     R"("event":"session_start","session":7,"file":"a b.bin","size":3000,"rate_bps":500000000)"},
    {Role::kSender, "waiting for the first bytes of g.bin", R"("event":"waiting_for_data","file":"g.bin")"},
    {Role::kSender, "backup: standing by for prim", R"("event":"backup_standby","primary":"prim")"},
    {Role::kSender, "hash known", R"("event":"hash_known")"},
    {Role::kSender, "want from d1: added to the session", R"("event":"want_joined","receiver":"d1")"},
    {Role::kSender, "tail parity: 12 frames for a loss of 2.5%",
     R"("event":"tail_parity","frames":12,"loss_percent":2.5)"},
    {Role::kSender, "tail: all data sent once", R"("event":"data_sent")"},
    {Role::kSender, "slow r2: finishing it by unicast", R"("event":"receiver_slow","receiver":"r2")"},
    {Role::kSender, "failed r2: no answer for 10 s", R"("event":"receiver_failed","receiver":"r2","reason":"no answer for 10 s")"},
    {Role::kSender, "complete r1", R"("event":"receiver_complete","receiver":"r1")"},
    {Role::kSender, "outcome quorum", R"("event":"outcome","outcome":"quorum")"},
    {Role::kSender, "rate 250000000", R"("event":"rate","rate_bps":250000000)"},
    {Role::kSender, "alert: NACK from r1 while primary prim is alive",
     R"("event":"primary_alive_nack","receiver":"r1","primary":"prim")"},
    {Role::kSender, "alert: receivers miss answers but primary prim is alive",
     R"("event":"primary_alive_unanswered","primary":"prim")"},
    {Role::kSender, "takeover: primary prim is down", R"("event":"takeover","primary":"prim")"},
    {Role::kSender, "probing primary prim", R"("event":"probing_primary","primary":"prim")"},
    {Role::kSender, "handback: primary prim is back", R"("event":"handback","primary":"prim")"},
    {Role::kSender, "primary finished", R"("event":"primary_finished")"},
    {Role::kSender, "finished", R"("event":"finished")"},
    {Role::kSender, "error: cannot read the object", R"("event":"error","message":"cannot read the object")"},
    {Role::kServer, "serving 3 objects", R"("event":"serving","objects":3)"},
    {Role::kServer, "want a.bin from d1", R"("event":"want_received","file":"a.bin","receiver":"d1")"},
    {Role::kServer, "served a.bin: all", R"("event":"served","file":"a.bin","outcome":"all")"},
    {Role::kServer, "complete d1", R"("event":"receiver_complete","receiver":"d1")"},
    {Role::kReceiver, "session 9 a.bin size 3000", R"("event":"session","session":9,"file":"a.bin","size":3000)"},
    {Role::kReceiver, "refused session for a.bin from prim: replayed announce",
     R"("event":"session_refused","file":"a.bin","sender":"prim","reason":"replayed announce")"},
    {Role::kReceiver, "resumed a.bin: 2000000 bytes on disk", R"("event":"resumed","file":"a.bin","bytes":2000000)"},
    {Role::kReceiver, "sender does not have what we asked for", R"("event":"not_available")"},
    {Role::kReceiver, "want a.bin", R"("event":"want_sent","file":"a.bin")"},
    {Role::kReceiver, "complete a.bin", R"("event":"file_complete","file":"a.bin")"},
    {Role::kReceiver, "failed a.bin: hash mismatch", R"("event":"file_failed","file":"a.bin","reason":"hash mismatch")"},
    {Role::kReceiver, "finished", R"("event":"finished")"},
};

TEST(McastEvents, EachCoreLineBecomesItsTypedRecord) {
  for (const Case& c : kCases) {
    const std::string rec = EventRecord(c.line, c.role, 1.5, false);
    const std::string want = std::string(R"({"v":1,"event")") + (c.record + 7);
    // {"v":1,"event":NAME,"role":R,"t":1.5,<fields>}
    auto j = ParseJson(rec);
    ASSERT_TRUE(j.ok()) << rec;
    EXPECT_EQ(j->Str("role"), RoleName(c.role));
    EXPECT_EQ(j->Num("t"), 1.5);
    std::string stripped = rec;
    const std::string role_t = std::string(R"(,"role":")") + RoleName(c.role) + R"(","t":1.5)";
    const size_t at = stripped.find(role_t);
    ASSERT_NE(at, std::string::npos) << rec;
    stripped.erase(at, role_t.size());
    EXPECT_EQ(stripped, "{\"v\":1," + std::string(c.record) + "}") << c.line;
  }
}

TEST(McastEvents, NumbersAreNumbersAndAlertsAreFlagged) {
  auto j = ParseJson(EventRecord("alert: NACK from r1 while primary p is alive", Role::kSender, 0, true));
  ASSERT_TRUE(j.ok());
  EXPECT_TRUE(j->Bool("alert"));
  j = ParseJson(EventRecord("start session 7 a.bin size 3000 rate 5", Role::kSender, 0, false));
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["size"].kind(), JsonValue::Kind::kNumber);
  EXPECT_FALSE(j->Has("alert"));
}

TEST(McastEvents, UnknownLineIsKeptAsTextNotDropped) {
  EXPECT_FALSE(ParseEvent("something new happened", Role::kSender));
  auto j = ParseJson(EventRecord("something new happened", Role::kReceiver, 0, false));
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->Str("event"), "message");
  EXPECT_EQ(j->Str("text"), "something new happened");
  // A number hole takes digits only.
  EXPECT_FALSE(ParseEvent("rate fast", Role::kSender));
  EXPECT_FALSE(ParseEvent("session x a.bin size 3", Role::kReceiver));
}

// --- the cores, simulated: every line they emit is known -------------------

const Address kGroup{0xef010209, 9003};
Address NodeAddr(uint32_t i) { return {0x0a000100u + i, 5000}; }

std::string Bytes(uint64_t seed, size_t n) {
  std::mt19937_64 r(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(r());
  return s;
}

// Checks every line node n emitted; records the event names seen.
void CheckLines(sim::Simulator<mcast::McastNode>& sim, int n, Role role, std::set<std::string>* seen) {
  for (const std::string& line : sim.events(n)) {
    auto e = ParseEvent(line, role);
    ASSERT_TRUE(e) << RoleName(role) << " line no pattern knows: \"" << line << "\"";
    seen->insert(e->name);
  }
}

TEST(McastEvents, EveryLineOfASimulatedSessionWithTakeoverIsKnown) {
  std::set<std::string> seen;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    sim::NetParams net;
    net.loss = 0.08;
    sim::Simulator<mcast::McastNode> sim(seed, net);
    const std::string bytes = Bytes(seed, 40000);
    mcast::MemorySource source(bytes);
    auto cfg = [&](bool backup) {
      mcast::SenderConfig c;
      c.id = backup ? "backup" : "primary";
      c.backup_for = backup ? "primary" : "";
      c.name = "obj";
      c.hash = HashBytes(bytes.data(), bytes.size());
      c.size = bytes.size();
      c.frame_size = 64;
      c.block_k = 16;
      c.rate_bps = 20'000'000;
      c.receivers = {"r0", "r1", "r2"};
      c.group = kGroup;
      c.seed = seed * 3 + backup;
      return c;
    };
    const int primary = sim.AddNode(NodeAddr(0), std::make_unique<mcast::McastNode>(
                                                     std::make_unique<mcast::Sender>(cfg(false), &source)));
    const int backup = sim.AddNode(NodeAddr(1), std::make_unique<mcast::McastNode>(
                                                    std::make_unique<mcast::Sender>(cfg(true), &source)));
    std::vector<std::unique_ptr<mcast::MemoryStore>> stores;
    std::vector<int> receivers;
    for (int i = 0; i < 3; ++i) {
      stores.push_back(std::make_unique<mcast::MemoryStore>());
      mcast::ReceiverConfig rc;
      rc.id = "r" + std::to_string(i);
      rc.group = kGroup;
      rc.seed = seed * 131 + static_cast<uint64_t>(i);
      receivers.push_back(sim.AddNode(NodeAddr(2 + static_cast<uint32_t>(i)),
                                      std::make_unique<mcast::McastNode>(
                                          std::make_unique<mcast::Receiver>(rc, stores.back().get()))));
    }
    for (int n = 0; n < sim.size(); ++n) sim.Join(n, kGroup);
    if (seed % 2 == 0) sim.SetLoss(receivers[1], 0.5);  // a slow receiver, finished by unicast
    const bool kill = seed % 3 != 0;
    while (sim.now() < 60 * kSeconds) {
      sim.RunUntil(sim.now() + 5 * kMillis);
      if (kill && sim.alive(primary) && sim.now() >= 30 * kMillis) sim.Crash(primary);
      mcast::Sender* active = sim.alive(primary) ? sim.core(primary).sender() : sim.core(backup).sender();
      if (active->finished()) break;
    }
    CheckLines(sim, primary, Role::kSender, &seen);
    CheckLines(sim, backup, Role::kSender, &seen);
    for (int r : receivers) CheckLines(sim, r, Role::kReceiver, &seen);
  }
  for (const char* name : {"session_start", "outcome", "finished", "takeover", "probing_primary", "backup_standby",
                           "receiver_complete", "session", "file_complete"})
    EXPECT_TRUE(seen.count(name)) << "the simulation never produced " << name << " (the test lost its reach)";
}

TEST(McastEvents, EveryLineOfASimulatedServerAndItsDaemonsIsKnown) {
  std::set<std::string> seen;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    sim::NetParams net;
    net.loss = 0.05;
    sim::Simulator<mcast::McastNode> sim(seed, net);
    std::vector<std::string> bytes;
    std::vector<std::unique_ptr<mcast::MemorySource>> sources;
    std::vector<mcast::WantEntry> wants;
    std::vector<mcast::ServedObject> objects;
    for (int o = 0; o < 2; ++o) {
      bytes.push_back(Bytes(seed * 7 + static_cast<uint64_t>(o), 5000));
      sources.push_back(std::make_unique<mcast::MemorySource>(bytes.back()));
      mcast::WantEntry w;
      w.name = "obj" + std::to_string(o);
      w.size = bytes.back().size();
      w.hash = HashBytes(bytes.back().data(), bytes.back().size());
      wants.push_back(w);
      objects.push_back({w.name, w.size, sources.back().get()});
    }
    mcast::ServerConfig vc;
    vc.session.id = "server";
    vc.session.frame_size = 64;
    vc.session.block_k = 16;
    vc.session.rate_bps = 20'000'000;
    vc.session.group = kGroup;
    vc.session.seed = seed;
    vc.seed = seed;
    const int server =
        sim.AddNode(NodeAddr(0), std::make_unique<mcast::McastNode>(std::make_unique<mcast::Server>(vc, objects)));
    std::vector<std::unique_ptr<mcast::MemoryStore>> stores;
    std::vector<int> daemons;
    for (int i = 0; i < 3; ++i) {
      stores.push_back(std::make_unique<mcast::MemoryStore>());
      if (i == 0) stores.back()->objects()["obj0"] = bytes[0];
      mcast::ReceiverConfig rc;
      rc.id = "d" + std::to_string(i);
      rc.group = kGroup;
      rc.one_session = false;
      rc.seed = seed * 131 + static_cast<uint64_t>(i);
      rc.wants = wants;
      rc.want_period = 300 * kMillis;
      daemons.push_back(sim.AddNode(NodeAddr(1 + static_cast<uint32_t>(i)),
                                    std::make_unique<mcast::McastNode>(
                                        std::make_unique<mcast::Receiver>(rc, stores.back().get()))));
    }
    for (int n = 0; n < sim.size(); ++n) sim.Join(n, kGroup);
    sim.RunUntil(20 * kSeconds);
    CheckLines(sim, server, Role::kServer, &seen);
    for (int d : daemons) CheckLines(sim, d, Role::kReceiver, &seen);
  }
  for (const char* name : {"serving", "want_received", "served", "want_sent", "file_complete", "session_start"})
    EXPECT_TRUE(seen.count(name)) << "the simulation never produced " << name << " (the test lost its reach)";
}

}  // namespace
}  // namespace cm::mcastrun
