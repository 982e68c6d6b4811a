// The CCM's job policy (lib/push/job_core.h), one scripted event at a time
// on virtual time. The randomized runs with simulated relays are in
// job_core_sim_test.cc.
#include "push/job_core.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace cm::push {
namespace {

using proto::kMillis;
using proto::kSeconds;

constexpr uint64_t kChunk = 100;
constexpr uint64_t kCovered = 400;

std::string Url(const std::string& server) { return "http://" + server; }

// sites "a", "b", ...; servers "a1", "a2", ...
JobPlan MakePlan(int sites, int servers, int parts = 1) {
  JobPlan p;
  for (int i = 0; i < sites; ++i) {
    JobSite s;
    s.name = std::string(1, static_cast<char>('a' + i));
    for (int k = 1; k <= servers; ++k) s.servers.push_back({s.name + std::to_string(k), Url(s.name + std::to_string(k))});
    p.sites.push_back(s);
  }
  for (int i = 0; i < parts; ++i) p.parts.push_back({static_cast<uint64_t>(10 + i), "job", 600, kCovered, kChunk});
  p.options.ccm_url = "http://ccm";
  p.options.timeout = 600 * kSeconds;
  return p;
}

class JobCoreTest : public ::testing::Test {
 protected:
  void Make(JobPlan plan) {
    auto c = JobCore::Create(std::move(plan));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    core_ = std::move(*c);
  }
  void Start() {
    a_.Clear();
    core_->Start(now_, &a_);
    Take();
  }
  // Collects the last event's actions.
  void Take() {
    for (const auto& c : a_.calls) calls_.push_back(c);
    for (const auto& r : a_.records) records_.push_back(r);
    for (const auto& e : a_.events) events_.push_back(e);
    if (a_.make_commit) make_commit_ = true;
    if (a_.update_shadow) shadow_ = true;
    if (a_.finished) {
      finished_ = true;
      verdicts_ = a_.verdicts;
    }
    wake_ = a_.wake_at;
  }
  // The pending calls to `url` of `endpoint`, oldest first; removes them.
  std::vector<Call> TakeCalls(Endpoint e, const std::string& url = "") {
    std::vector<Call> out, rest;
    for (auto& c : calls_) (c.endpoint == e && (url.empty() || c.base_url == url) ? out : rest).push_back(c);
    calls_ = rest;
    return out;
  }
  void Done(const Call& c, bool ok, int status = 200) {
    a_.Clear();
    core_->OnCallDone(now_, CallResult{c.id, ok, ok ? status : 0, ok ? "{}" : "connection refused"}, &a_);
    Take();
  }
  // Answers every pending order ok.
  void AckOrders() {
    for (const auto& c : TakeCalls(Endpoint::kFetch)) Done(c, true);
  }
  // Runs timers up to `t`.
  void AdvanceTo(Micros t) {
    while (wake_ <= t && !finished_) {
      now_ = std::max(now_, wake_);
      a_.Clear();
      core_->OnTimer(now_, &a_);
      Take();
    }
    now_ = std::max(now_, t);
  }
  Reply Report(const std::string& site, const std::string& leader, std::vector<std::pair<std::string, ServerState>> s,
               uint64_t serial = 10, const std::map<std::string, std::string>& manifests = {}) {
    SiteReport r;
    r.serial = serial;
    r.site = site;
    r.leader = leader;
    for (const auto& [name, st] : s) {
      r.servers.push_back({name, st, st == ServerState::kFailed ? "boom" : "", Via::kMulticast, 0});
      if (auto m = manifests.find(name); m != manifests.end()) r.servers.back().manifest = m->second;
    }
    a_.Clear();
    Reply rep = core_->OnSiteReport(now_, r, &a_);
    Take();
    return rep;
  }
  Reply ProgressOf(const std::string& relay, uint64_t verified, uint64_t serial = 10) {
    a_.Clear();
    Reply r = core_->OnProgress(now_, Progress{serial, relay, verified, kCovered, verified >= kCovered}, &a_);
    Take();
    return r;
  }
  std::vector<JobEvent> EventsOf(JobEvent::Kind k) const {
    std::vector<JobEvent> out;
    for (const auto& e : events_)
      if (e.kind == k) out.push_back(e);
    return out;
  }
  // Final records (staged, committed, failed) of `server` for `serial`.
  std::vector<StateRecord> FinalRecords(const std::string& server, uint64_t serial) const {
    std::vector<StateRecord> out;
    for (const auto& r : records_)
      if (r.server == server && r.serial == serial && r.state != ServerState::kFetching) out.push_back(r);
    return out;
  }
  const FinalVerdict* VerdictOf(const std::string& server) const {
    for (const auto& v : verdicts_)
      if (v.server == server) return &v;
    return nullptr;
  }

  std::unique_ptr<JobCore> core_;
  Micros now_ = 1000 * kSeconds;
  JobActions a_;
  std::vector<Call> calls_;
  std::vector<StateRecord> records_;
  std::vector<JobEvent> events_;
  std::vector<FinalVerdict> verdicts_;
  bool make_commit_ = false, shadow_ = false, finished_ = false;
  Micros wake_ = proto::kNever;
};

TEST_F(JobCoreTest, CreateRejectsAPlanWithoutSitesServersOrOrderedParts) {
  EXPECT_EQ(JobCore::Create(JobPlan{}).status().code(), Code::kUsage);
  JobPlan p = MakePlan(1, 1);
  p.sites[0].servers.clear();
  EXPECT_EQ(JobCore::Create(p).status().code(), Code::kUsage);
  p = MakePlan(2, 1);
  p.sites[1].servers[0].name = "a1";
  EXPECT_EQ(JobCore::Create(p).status().code(), Code::kUsage);
  p = MakePlan(1, 1, 2);
  p.parts[1].serial = 9;
  EXPECT_EQ(JobCore::Create(p).status().code(), Code::kUsage);
}

TEST_F(JobCoreTest, StarModeOrdersEverySiteLeaderFromTheCcmWithItsMembers) {
  Make(MakePlan(2, 3));
  Start();
  auto orders = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(orders.size(), 2u);
  for (const auto& c : orders) {
    auto o = ParseFetchOrder(c.body);
    ASSERT_TRUE(o.ok());
    EXPECT_EQ(c.base_url, Url(o->relay));
    EXPECT_EQ(o->source, "http://ccm");
    EXPECT_EQ(o->source_name, "");
    EXPECT_EQ(o->members.size(), 2u);
    EXPECT_EQ(o->serial, 10u);
    EXPECT_TRUE(o->serve);
  }
  // Every server is recorded fetching.
  EXPECT_EQ(std::count_if(records_.begin(), records_.end(), [](auto& r) { return r.state == ServerState::kFetching; }), 6);
  EXPECT_LE(wake_, now_ + 2 * kSeconds);
}

TEST_F(JobCoreTest, LeaderIsTheElectedOneElseTheSitesFilesElseTheFirstServer) {
  JobPlan p = MakePlan(3, 3);
  p.sites[0].elected_leader = "a3";
  p.sites[0].preferred_leader = "a2";
  p.sites[1].preferred_leader = "b2";
  Make(p);
  Start();
  EXPECT_EQ(core_->LeaderOf("a"), "a3");
  EXPECT_EQ(core_->LeaderOf("b"), "b2");
  EXPECT_EQ(core_->LeaderOf("c"), "c1");
}

TEST_F(JobCoreTest, UnreachableOrderReplacesTheSiteLeaderWithTheElectedOne) {
  Make(MakePlan(1, 3));
  Start();
  a_.Clear();
  core_->OnLeaderReport(now_, "a", "a3", &a_);
  Take();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto orders = TakeCalls(Endpoint::kFetch, Url("a1"));
    ASSERT_EQ(orders.size(), 1u) << "attempt " << attempt;
    Done(orders[0], false);
    if (attempt < 3) {
      EXPECT_EQ(core_->LeaderOf("a"), "a1");
      AdvanceTo(now_ + 300 * kMillis * attempt);  // the back-off
    }
  }
  EXPECT_EQ(core_->LeaderOf("a"), "a3");
  auto changed = EventsOf(JobEvent::Kind::kLeaderChanged);
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].from, "a1");
  EXPECT_EQ(changed[0].to, "a3");
  EXPECT_EQ(changed[0].reason, ReplaceReason::kUnreachable);
  auto rec = FinalRecords("a1", 10);
  ASSERT_EQ(rec.size(), 1u);
  EXPECT_EQ(rec[0].state, ServerState::kFailed);
  EXPECT_EQ(rec[0].error.rfind("unreachable", 0), 0u);
  auto orders = TakeCalls(Endpoint::kFetch, Url("a3"));
  ASSERT_EQ(orders.size(), 1u);
  auto o = ParseFetchOrder(orders[0].body);
  ASSERT_TRUE(o.ok());
  ASSERT_EQ(o->members.size(), 1u);  // the failed old leader is no member
  EXPECT_EQ(o->members[0].name, "a2");
}

TEST_F(JobCoreTest, OnlyTheCurrentLeadersReportClosesItsSite) {
  Make(MakePlan(1, 3));
  Start();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Done(TakeCalls(Endpoint::kFetch, Url("a1")).at(0), false);
    AdvanceTo(now_ + 300 * kMillis * attempt);
  }
  ASSERT_EQ(core_->LeaderOf("a"), "a2");
  AckOrders();
  // The replaced leader reports after all: its success counts for a member,
  // not for itself, and the site stays open.
  Report("a", "a1", {{"a1", ServerState::kStaged}, {"a3", ServerState::kStaged}, {"a2", ServerState::kFailed}});
  EXPECT_TRUE(EventsOf(JobEvent::Kind::kSiteReport).empty());
  EXPECT_EQ(FinalRecords("a1", 10).at(0).state, ServerState::kFailed);
  EXPECT_EQ(FinalRecords("a3", 10).at(0).state, ServerState::kStaged);
  EXPECT_TRUE(FinalRecords("a2", 10).empty());  // a replaced leader's failures are not verdicts
  EXPECT_FALSE(make_commit_);
  Report("a", "a2", {{"a2", ServerState::kStaged}, {"a3", ServerState::kStaged}});
  ASSERT_EQ(EventsOf(JobEvent::Kind::kSiteReport).size(), 1u);
  EXPECT_EQ(FinalRecords("a3", 10).size(), 1u);  // one verdict per server per part
  EXPECT_FALSE(make_commit_);  // --require all: a1 failed
  EXPECT_TRUE(finished_);
  EXPECT_EQ(VerdictOf("a1")->state, ServerState::kFailed);
  EXPECT_EQ(VerdictOf("a2")->state, ServerState::kStaged);
  EXPECT_NE(VerdictOf("a2")->error.find("not committed"), std::string::npos);
}

TEST_F(JobCoreTest, ANewLeaderThatAReplacedOneReportedStagedCanStillBeReplaced) {
  Make(MakePlan(1, 3));
  Start();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Done(TakeCalls(Endpoint::kFetch, Url("a1")).at(0), false);
    AdvanceTo(now_ + 300 * kMillis * attempt);
  }
  ASSERT_EQ(core_->LeaderOf("a"), "a2");
  Report("a", "a1", {{"a2", ServerState::kStaged}});  // the old leader's word for the new one
  EXPECT_EQ(FinalRecords("a2", 10).at(0).state, ServerState::kStaged);
  // The new leader dies before it reports: the site moves on to a3.
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Done(TakeCalls(Endpoint::kFetch, Url("a2")).at(0), false);
    AdvanceTo(now_ + 300 * kMillis * attempt);
  }
  EXPECT_EQ(core_->LeaderOf("a"), "a3");
  EXPECT_EQ(FinalRecords("a2", 10).size(), 1u);  // it keeps its one verdict
  AckOrders();
  Report("a", "a3", {{"a3", ServerState::kStaged}});
  EXPECT_EQ(EventsOf(JobEvent::Kind::kSiteReport).size(), 1u);
  EXPECT_TRUE(finished_);  // --require all: a1 failed, no commit
}

TEST_F(JobCoreTest, TimeoutEndsTheJobWithEveryMissingServerFailed) {
  JobPlan p = MakePlan(2, 2, 2);
  p.options.timeout = 30 * kSeconds;
  Make(p);
  Micros start = now_;
  Start();
  AckOrders();
  Report("a", "a1", {{"a1", ServerState::kStaged}, {"a2", ServerState::kStaged}});
  // The b site's leader answers probes but never reports.
  while (!finished_ && now_ < start + 40 * kSeconds) {
    AdvanceTo(now_ + 100 * kMillis);
    for (const auto& c : TakeCalls(Endpoint::kStatus)) Done(c, true);
    AckOrders();
  }
  ASSERT_TRUE(finished_);
  EXPECT_EQ(now_, start + 30 * kSeconds);
  ASSERT_EQ(verdicts_.size(), 4u);
  for (const auto& v : verdicts_) {
    EXPECT_FALSE(v.ok) << v.server;
    if (v.site == "b") {
      EXPECT_EQ(v.state, ServerState::kFailed);
      EXPECT_EQ(v.error, "timed out");
      EXPECT_EQ(FinalRecords(v.server, 10).size(), 1u);
    }
  }
  EXPECT_EQ(wake_, proto::kNever);
}

TEST_F(JobCoreTest, CommitGoesOnlyToStagedServersWhenRequireAllows) {
  JobPlan p = MakePlan(2, 2);
  p.options.require = *ParseRequire("75%");
  Make(p);
  Start();
  AckOrders();
  Report("a", "a1", {{"a1", ServerState::kStaged}, {"a2", ServerState::kStaged}});
  EXPECT_FALSE(make_commit_);
  Report("b", "b1", {{"b1", ServerState::kStaged}, {"b2", ServerState::kFailed}});
  ASSERT_TRUE(make_commit_);
  EXPECT_EQ(core_->stage(), JobStage::kAwaitCommit);
  a_.Clear();
  core_->OnCommitReady(now_, JobPart{20, "job", 256, 0, 0}, &a_);
  Take();
  ASSERT_EQ(EventsOf(JobEvent::Kind::kCommit).size(), 1u);
  EXPECT_EQ(EventsOf(JobEvent::Kind::kCommit)[0].count, 3u);
  auto orders = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(orders.size(), 2u);
  for (const auto& c : orders) {
    auto o = ParseFetchOrder(c.body);
    ASSERT_TRUE(o.ok());
    EXPECT_EQ(o->kind, TransferKind::kCommit);
    EXPECT_EQ(o->serial, 20u);
    if (o->site == "b") EXPECT_TRUE(o->members.empty());  // b2 did not stage
    else EXPECT_EQ(o->members.size(), 1u);
    Done(c, true);
  }
  Report("a", "a1", {{"a1", ServerState::kCommitted}, {"a2", ServerState::kCommitted}}, 20);
  Report("b", "b1", {{"b1", ServerState::kCommitted}}, 20);
  ASSERT_TRUE(finished_);
  EXPECT_TRUE(shadow_);
  EXPECT_TRUE(VerdictOf("a1")->ok);
  EXPECT_EQ(VerdictOf("a1")->serial, 20u);
  EXPECT_FALSE(VerdictOf("b2")->ok);
  EXPECT_EQ(VerdictOf("b2")->error, "boom");
}

TEST_F(JobCoreTest, ACommitOfAnotherTreeIsAFailureNotCommitted) {
  const std::string want(64, 'a'), other(64, 'b');
  JobPlan p = MakePlan(1, 3);
  p.options.expect_manifest = want;
  Make(p);
  Start();
  AckOrders();
  Report("a", "a1", {{"a1", ServerState::kStaged}, {"a2", ServerState::kStaged}, {"a3", ServerState::kStaged}});
  ASSERT_TRUE(make_commit_);
  a_.Clear();
  core_->OnCommitReady(now_, JobPart{20, "job", 256, 0, 0}, &a_);
  Take();
  for (const auto& c : TakeCalls(Endpoint::kFetch)) Done(c, true);
  Report("a", "a1", {{"a1", ServerState::kCommitted}, {"a2", ServerState::kCommitted}, {"a3", ServerState::kCommitted}},
         20, {{"a1", want}, {"a2", other}});  // a3: an older relay that does not say
  ASSERT_TRUE(finished_);
  EXPECT_TRUE(VerdictOf("a1")->ok);
  EXPECT_EQ(VerdictOf("a1")->manifest, want);
  EXPECT_FALSE(VerdictOf("a2")->ok);
  EXPECT_EQ(VerdictOf("a2")->state, ServerState::kFailed);
  EXPECT_EQ(VerdictOf("a2")->apply_exit, 8);
  EXPECT_NE(VerdictOf("a2")->error.find("is not the job's"), std::string::npos) << VerdictOf("a2")->error;
  EXPECT_TRUE(VerdictOf("a3")->ok);
}

TEST_F(JobCoreTest, ARefusedOrderFailsTheLeaderAtOnceWithTheRelaysReason) {
  Make(MakePlan(1, 3));
  Start();
  auto orders = TakeCalls(Endpoint::kFetch, Url("a1"));
  ASSERT_EQ(orders.size(), 1u);
  a_.Clear();
  core_->OnCallDone(now_, CallResult{orders[0].id, true, 403, R"({"error":"this relay is 'web-a1', the order is for 'a1'"})"},
                    &a_);
  Take();
  // No second attempt at a refusing relay: the next server leads now.
  EXPECT_EQ(core_->LeaderOf("a"), "a2");
  EXPECT_TRUE(TakeCalls(Endpoint::kFetch, Url("a1")).empty());
  auto recs = FinalRecords("a1", 10);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].state, ServerState::kFailed);
  EXPECT_EQ(recs[0].error, "refused: HTTP 403: this relay is 'web-a1', the order is for 'a1'");
  auto servers = EventsOf(JobEvent::Kind::kServer);
  ASSERT_EQ(servers.size(), 1u);  // said at once, not at the end
  EXPECT_EQ(servers[0].server, "a1");
  EXPECT_EQ(EventsOf(JobEvent::Kind::kLeaderChanged)[0].reason, ReplaceReason::kRefused);
}

TEST_F(JobCoreTest, ARelaysOwnFailureEndsItsPartWithTheReasonAndApplyExit) {
  Make(MakePlan(1, 2));
  Start();
  AckOrders();
  a_.Clear();
  Reply r = core_->OnRelayFailed(now_, "a1", 10, "no space left on device (spool)", 9, &a_);
  Take();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(core_->LeaderOf("a"), "a2");
  auto recs = FinalRecords("a1", 10);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].error, "no space left on device (spool)");
  EXPECT_EQ(recs[0].apply_exit, 9);
  // Another serial's, or a member's, report changes nothing.
  a_.Clear();
  core_->OnRelayFailed(now_, "a2", 99, "x", 1, &a_);
  Take();
  EXPECT_EQ(core_->LeaderOf("a"), "a2");
  AckOrders();
  Report("a", "a2", {{"a2", ServerState::kStaged}});
  ASSERT_TRUE(finished_);  // --require all: a1 failed, so no commit
  EXPECT_EQ(VerdictOf("a2")->state, ServerState::kStaged);
  EXPECT_EQ(VerdictOf("a1")->apply_exit, 9);
}

TEST_F(JobCoreTest, AServerThatDidNotAnswerAtStartIsNotTheFirstLeader) {
  JobPlan p = MakePlan(2, 3);
  p.sites[0].servers[0].down = true;
  p.sites[0].servers[1].down = true;
  p.sites[1].elected_leader = "b2";
  p.sites[1].servers[1].down = true;
  for (auto& s : p.sites[1].servers) s.down = true;  // all down: the usual choice stands
  Make(p);
  Start();
  EXPECT_EQ(core_->LeaderOf("a"), "a3");
  EXPECT_EQ(core_->LeaderOf("b"), "b2");
}

TEST_F(JobCoreTest, ARollbackTravelsAsASwitchAndNoCommitFollows) {
  JobPlan p = MakePlan(1, 2);
  p.parts = {{30, "rollback", 300, 0, 0}};
  p.options.switch_job = true;
  p.options.commit = false;
  Make(p);
  Start();
  auto orders = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(orders.size(), 1u);
  auto o = ParseFetchOrder(orders[0].body);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->kind, TransferKind::kCommit);
  Done(orders[0], true);
  Report("a", "a1", {{"a1", ServerState::kCommitted}, {"a2", ServerState::kFailed}}, 30);
  ASSERT_TRUE(finished_);
  EXPECT_FALSE(make_commit_);
  EXPECT_TRUE(shadow_);
  EXPECT_TRUE(VerdictOf("a1")->ok);
  EXPECT_FALSE(VerdictOf("a2")->ok);
}

TEST_F(JobCoreTest, FactsFromTheSitesFileOrderTheChain) {
  JobPlan p = MakePlan(3, 1);
  p.options.star_max = 1;
  p.sites[0].servers[0].rate_bps = 10e6;
  p.sites[1].servers[0].rate_bps = 100e6;
  p.sites[2].servers[0].rate_bps = 100e6;
  p.sites[2].servers[0].reliability = 0.5;
  Make(p);
  Start();
  auto orders = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(orders.size(), 1u);  // a chain: one site from the CCM, the fastest reliable one
  EXPECT_EQ(orders[0].base_url, Url("b1"));
}

TEST_F(JobCoreTest, CommitIsRefusedWhenRequireIsNotMet) {
  Make(MakePlan(2, 1));
  Start();
  AckOrders();
  Report("a", "a1", {{"a1", ServerState::kStaged}});
  Report("b", "b1", {{"b1", ServerState::kFailed}});
  EXPECT_FALSE(make_commit_);
  ASSERT_TRUE(finished_);
  EXPECT_EQ(EventsOf(JobEvent::Kind::kCommitRefused).size(), 1u);
  EXPECT_FALSE(shadow_);
  EXPECT_EQ(VerdictOf("a1")->error, "staged, not committed (--require all)");
}

TEST_F(JobCoreTest, NoCommitOptionEndsAfterStagingWithStagedAsSuccess) {
  JobPlan p = MakePlan(1, 2);
  p.options.commit = false;
  Make(p);
  Start();
  AckOrders();
  Report("a", "a1", {{"a1", ServerState::kStaged}, {"a2", ServerState::kStaged}});
  ASSERT_TRUE(finished_);
  EXPECT_TRUE(VerdictOf("a2")->ok);
}

TEST_F(JobCoreTest, AFailedCommitAssignmentEndsTheJobWithoutACommit) {
  Make(MakePlan(1, 1));
  Start();
  AckOrders();
  Report("a", "a1", {{"a1", ServerState::kStaged}});
  ASSERT_TRUE(make_commit_);
  a_.Clear();
  core_->OnCommitReady(now_, Error(Code::kFailure, "cm-pack commit: no key"), &a_);
  Take();
  ASSERT_TRUE(finished_);
  EXPECT_FALSE(shadow_);
  EXPECT_NE(VerdictOf("a1")->error.find("no key"), std::string::npos);
}

TEST_F(JobCoreTest, PartsGoInOrderAndOnlyServersThatStagedGetTheNext) {
  Make(MakePlan(1, 3, 2));
  Start();
  AckOrders();
  Report("a", "a1", {{"a1", ServerState::kStaged}, {"a2", ServerState::kFailed}, {"a3", ServerState::kStaged}});
  auto orders = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(orders.size(), 1u);
  auto o = ParseFetchOrder(orders[0].body);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->serial, 11u);
  ASSERT_EQ(o->members.size(), 1u);
  EXPECT_EQ(o->members[0].name, "a3");
  EXPECT_EQ(Report("a", "a1", {{"a1", ServerState::kStaged}}, 10).body, "{\"stale\":true}");
}

TEST_F(JobCoreTest, SequentialModeSendsToEveryServerInTurnFromTheCcm) {
  JobPlan p = MakePlan(1, 2);
  p.options.sequential = true;
  p.options.commit = false;
  Make(p);
  Start();
  auto first = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].base_url, Url("a1"));
  auto o = ParseFetchOrder(first[0].body);
  EXPECT_TRUE(o->members.empty());
  EXPECT_FALSE(o->serve);
  Done(first[0], true);
  Report("a", "a1", {{"a1", ServerState::kStaged}});
  auto second = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].base_url, Url("a2"));
  Done(second[0], true);
  Report("a", "a2", {{"a2", ServerState::kStaged}});
  EXPECT_TRUE(finished_);
}

TEST_F(JobCoreTest, NextAnswersNameTheNextLeaderWithItsOrder) {
  JobPlan p = MakePlan(3, 1);
  p.options.star_max = 1;
  Make(p);
  Start();
  auto orders = TakeCalls(Endpoint::kFetch);
  ASSERT_EQ(orders.size(), 1u);  // tree: the CCM serves one leader
  std::string first = ParseFetchOrder(orders[0].body)->relay;
  Done(orders[0], true);
  a_.Clear();
  Reply r = core_->OnNext(now_, NextAsk{10, first, kChunk, false}, &a_);
  Take();
  auto ans = ParseNextAnswer(r.body);
  ASSERT_TRUE(ans.ok()) << r.body;
  ASSERT_EQ(ans->kind, NextAnswer::Kind::kNext);
  EXPECT_EQ(ans->url, Url(ans->relay));
  EXPECT_EQ(ans->order.source_name, first);
  EXPECT_EQ(ans->order.source, Url(first));
  EXPECT_EQ(EventsOf(JobEvent::Kind::kOrder).back().from, first);
  // Stale serial: none left.
  a_.Clear();
  EXPECT_EQ(ParseNextAnswer(core_->OnNext(now_, NextAsk{9, first, 0, false}, &a_).body)->kind, NextAnswer::Kind::kNoneLeft);
}

TEST_F(JobCoreTest, SourceFailedIsAnsweredAtOnceAndADeadSourceLosesItsSite) {
  JobPlan p = MakePlan(3, 2);
  p.options.star_max = 1;
  Make(p);
  Start();
  auto orders = TakeCalls(Endpoint::kFetch);
  std::string first = ParseFetchOrder(orders.at(0).body)->relay;
  Done(orders[0], true);
  ProgressOf(first, 2 * kChunk);
  a_.Clear();
  auto ans = ParseNextAnswer(core_->OnNext(now_, NextAsk{10, first, 2 * kChunk, false}, &a_).body);
  Take();
  ASSERT_EQ(ans->kind, NextAnswer::Kind::kNext);
  std::string second = ans->relay;
  ProgressOf(second, kChunk);
  // The second leader lost its source: answered at once, from the CCM.
  a_.Clear();
  Reply r = core_->OnSourceFailed(now_, SourceFailed{10, second, first, Url(first), kChunk, "reset"}, &a_);
  Take();
  ASSERT_EQ(r.status, 200) << r.body;
  auto sa = ParseSourceAnswer(r.body);
  ASSERT_TRUE(sa.ok());
  EXPECT_EQ(sa->source_url, "http://ccm");
  auto rep = EventsOf(JobEvent::Kind::kReparent);
  ASSERT_FALSE(rep.empty());
  EXPECT_EQ(rep.back().relay, second);
  EXPECT_EQ(rep.back().bytes, kChunk);
  // ... and the source is probed; it is dead: its site gets a new leader.
  auto probes = TakeCalls(Endpoint::kStatus, Url(first));
  ASSERT_EQ(probes.size(), 1u);
  std::string site = first.substr(0, 1);
  Done(probes[0], false);
  EXPECT_EQ(core_->LeaderOf(site), site + "2");
  EXPECT_EQ(EventsOf(JobEvent::Kind::kLeaderChanged).back().reason, ReplaceReason::kDiedMidTransfer);
}

TEST_F(JobCoreTest, TwoFailedProbesInARowReplaceTheLeader) {
  Make(MakePlan(1, 2));
  Start();
  AckOrders();
  AdvanceTo(now_ + 2 * kSeconds);
  auto p1 = TakeCalls(Endpoint::kStatus);
  ASSERT_EQ(p1.size(), 1u);
  Done(p1[0], false);
  EXPECT_EQ(core_->LeaderOf("a"), "a1");
  AdvanceTo(now_ + 2 * kSeconds);
  auto p2 = TakeCalls(Endpoint::kStatus);
  ASSERT_EQ(p2.size(), 1u);
  Done(p2[0], true);  // a success resets the count
  AdvanceTo(now_ + 2 * kSeconds);
  Done(TakeCalls(Endpoint::kStatus).at(0), false);
  EXPECT_EQ(core_->LeaderOf("a"), "a1");
  AdvanceTo(now_ + 2 * kSeconds);
  Done(TakeCalls(Endpoint::kStatus).at(0), false);
  EXPECT_EQ(core_->LeaderOf("a"), "a2");
  EXPECT_EQ(EventsOf(JobEvent::Kind::kLeaderChanged).back().reason, ReplaceReason::kNotAnswering);
}

TEST_F(JobCoreTest, AStalledLeaderIsReplaced) {
  Make(MakePlan(1, 2));
  Start();
  AckOrders();
  ProgressOf("a1", kChunk);
  // It answers probes but its bytes stop.
  Micros until = now_ + 20 * kSeconds;
  while (now_ < until && core_->LeaderOf("a") == "a1") {
    AdvanceTo(now_ + 500 * kMillis);
    for (const auto& c : TakeCalls(Endpoint::kStatus)) Done(c, true);
  }
  EXPECT_EQ(core_->LeaderOf("a"), "a2");
  EXPECT_EQ(EventsOf(JobEvent::Kind::kLeaderChanged).back().reason, ReplaceReason::kStalled);
  EXPECT_EQ(FinalRecords("a1", 10).at(0).error, "stalled");
}

TEST_F(JobCoreTest, NotifyFailedProbesTheTargetAndReplacesItWhenDown) {
  JobPlan p = MakePlan(2, 2);
  p.options.star_max = 1;
  Make(p);
  Start();
  auto orders = TakeCalls(Endpoint::kFetch);
  std::string first = ParseFetchOrder(orders.at(0).body)->relay;
  Done(orders[0], true);
  a_.Clear();
  auto ans = ParseNextAnswer(core_->OnNext(now_, NextAsk{10, first, kChunk, false}, &a_).body);
  Take();
  ASSERT_EQ(ans->kind, NextAnswer::Kind::kNext);
  a_.Clear();
  Reply r = core_->OnNotifyFailed(now_, NotifyFailed{10, first, ans->relay, "refused"}, &a_);
  Take();
  EXPECT_EQ(r.status, 200);
  auto probes = TakeCalls(Endpoint::kStatus, Url(ans->relay));
  ASSERT_EQ(probes.size(), 1u);
  Done(probes[0], false);
  std::string site = ans->relay.substr(0, 1);
  EXPECT_EQ(core_->LeaderOf(site), site + "2");
  EXPECT_EQ(FinalRecords(ans->relay, 10).at(0).error, "unreachable: refused");
}

TEST_F(JobCoreTest, ASiteWithNoServerLeftFailsAndTheJobGoesOn) {
  Make(MakePlan(2, 1));
  Start();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Done(TakeCalls(Endpoint::kFetch, Url("a1")).at(0), false);
    AdvanceTo(now_ + 300 * kMillis * attempt);
  }
  EXPECT_EQ(EventsOf(JobEvent::Kind::kSiteFailed).size(), 1u);
  AckOrders();
  Report("b", "b1", {{"b1", ServerState::kStaged}});
  EXPECT_TRUE(finished_);  // commit refused: a1 failed
  EXPECT_EQ(VerdictOf("a1")->state, ServerState::kFailed);
}

TEST_F(JobCoreTest, RequestsForAnotherSerialAreStale) {
  Make(MakePlan(1, 1));
  Start();
  a_.Clear();
  EXPECT_EQ(core_->OnProgress(now_, Progress{99, "a1", 1, 1, false}, &a_).body, "{\"stale\":true}");
  EXPECT_EQ(core_->OnSourceFailed(now_, SourceFailed{99, "a1", "", "", 0, ""}, &a_).status, 409);
  EXPECT_EQ(Report("a", "a1", {{"a1", ServerState::kStaged}}, 99).body, "{\"stale\":true}");
}

TEST_F(JobCoreTest, NoOrderEverGoesToAServerOutsideThePlan) {
  Make(MakePlan(1, 2));
  Start();
  a_.Clear();
  core_->OnLeaderReport(now_, "a", "zz9", &a_);    // unknown server: ignored
  core_->OnLeaderReport(now_, "nope", "a2", &a_);  // wrong site: ignored
  Take();
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Done(TakeCalls(Endpoint::kFetch, Url("a1")).at(0), false);
    AdvanceTo(now_ + 300 * kMillis * attempt);
  }
  EXPECT_EQ(core_->LeaderOf("a"), "a2");
  for (const auto& c : calls_) EXPECT_TRUE(c.base_url == Url("a1") || c.base_url == Url("a2")) << c.base_url;
}

}  // namespace
}  // namespace cm::push
