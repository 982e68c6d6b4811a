// The relay core (lib/push/relay_core.h), event by event on virtual time:
// each test scripts what the edge and the network report and checks the
// actions that come out.
#include "push/relay_core.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace cm::push {
namespace {

using proto::kMillis;
using proto::kSeconds;

constexpr uint64_t kSerial = 7;
constexpr uint64_t kSize = 1000;

class RelayCoreTest : public ::testing::Test {
 protected:
  RelayCoreTest() : core_(Options()) {}

  static RelayCoreOptions Options() {
    RelayCoreOptions o;
    o.name = "r1";
    o.url = "http://r1";
    o.member_wait = 60 * kSeconds;
    return o;
  }

  static FetchOrder Order(std::vector<std::string> members = {}, bool stream = true, bool serve = false) {
    FetchOrder o;
    o.serial = kSerial;
    o.job = "j";
    o.source = "http://ccm";
    o.ccm = "http://ccm";
    o.relay = "r1";
    o.site = "s1";
    o.group = members.empty() ? "" : "239.1.1.1:5000";
    for (const auto& m : members) o.members.push_back({m, "http://" + m});
    o.stream = stream;
    o.serve = serve;
    return o;
  }

  static Expect ExpectFrom(const std::string& leader, const std::string& group = "239.1.1.1:5000") {
    Expect e;
    e.serial = kSerial;
    e.job = "j";
    e.size = kSize;
    e.name = "r1";
    e.leader = leader;
    e.leader_url = "http://" + leader;
    e.group = group;
    return e;
  }

  // Time passes; the timer fires when due.
  void Advance(Micros d) {
    Micros end = now_ + d;
    for (int spins = 0; wake_ != proto::kNever && wake_ <= end; ++spins) {
      if (spins > 100000) {
        ADD_FAILURE() << "the timer does not advance: wake " << wake_ << " now " << now_;
        break;
      }
      now_ = std::max(now_, wake_);
      core_.OnTimer(now_, &a_);
      Collect();
    }
    now_ = end;
  }

  void Collect() {
    wake_ = a_.wake_at;
    for (const auto& c : a_.calls) calls_.push_back(c), made_.push_back(c);
    for (const auto& f : a_.fetches) fetches_.push_back(f);
    for (const auto& c : a_.children) children_.push_back(c);
    for (auto id : a_.cancel_children) cancelled_.push_back(id);
  }

  Reply Fetch(const FetchOrder& o) {
    Reply r = core_.OnFetchOrder(now_, o, &a_);
    Collect();
    return r;
  }
  void ExpectEv(const Expect& e, bool unicast = false) {
    core_.OnExpect(now_, e, &a_, unicast);
    Collect();
  }
  Reply Report(const std::string& name, ServerState st) {
    Reply r = core_.OnMemberReport(now_, MemberReport{kSerial, ServerResult{name, st, "", Via::kMulticast}}, &a_);
    Collect();
    return r;
  }
  void Update(uint64_t attempt, bool table, uint64_t verified, bool complete, bool ended = false,
              std::string error = "", FetchFault fault = FetchFault::kSource) {
    core_.OnFetchUpdate(
        now_, FetchUpdate{kSerial, attempt, table, verified, table ? kSize : 0, complete, ended, error, fault}, &a_);
    Collect();
  }
  void Done(ChildId id, int exit_code = 0, bool cancelled = false, bool file_complete = false, std::string line = "",
            std::string release = "") {
    core_.OnChildDone(now_, ChildDone{id, exit_code, line, cancelled, file_complete, release}, &a_);
    Collect();
  }
  // Answers the oldest unanswered call to `ep` (at `url` when given).
  Call Answer(Endpoint ep, int status = 200, std::string body = "{\"ok\":true}", const std::string& url = "") {
    Call c = TakeCall(ep, url);
    core_.OnCallDone(now_, CallResult{c.id, true, status, body}, &a_);
    Collect();
    return c;
  }
  Call Unreached(Endpoint ep, const std::string& url = "", const std::string& why = "connection refused") {
    Call c = TakeCall(ep, url);
    core_.OnCallDone(now_, CallResult{c.id, false, 0, why}, &a_);
    Collect();
    return c;
  }
  Call TakeCall(Endpoint ep, const std::string& url) {
    auto it = std::find_if(calls_.begin(), calls_.end(), [&](const Call& c) {
      return c.endpoint == ep && (url.empty() || c.base_url == url);
    });
    EXPECT_NE(it, calls_.end()) << "no call to " << EndpointPath(ep) << " " << url;
    if (it == calls_.end()) return Call{};
    Call c = *it;
    calls_.erase(it);
    return c;
  }
  size_t Pending(Endpoint ep) const {
    return std::count_if(calls_.begin(), calls_.end(), [&](const Call& c) { return c.endpoint == ep; });
  }
  const StartChild* Child(ChildKind k) const {
    for (auto it = children_.rbegin(); it != children_.rend(); ++it)
      if (it->kind == k) return &*it;
    return nullptr;
  }
  // Leader that holds the whole file at once.
  uint64_t LeadAndComplete(const FetchOrder& o) {
    Fetch(o);
    uint64_t attempt = fetches_.back().attempt;
    Update(attempt, true, kSize, true);
    Update(attempt, true, kSize, true, true);
    return attempt;
  }
  RelayFailed TakeRelayFailed() {
    Call c = TakeCall(Endpoint::kRelayFailed, "");
    auto r = ParseRelayFailed(c.body);
    EXPECT_TRUE(r.ok()) << c.body;
    EXPECT_EQ(c.to, "ccm");
    return r.ok() ? *r : RelayFailed{};
  }
  // A member's GET /v1/status answer listing `serial` in `state` (none: it
  // knows nothing).
  static std::string StatusBody(const std::string& name, const std::string& state = "") {
    RelayStatus st;
    st.name = name;
    if (!state.empty()) st.transfers.push_back({kSerial, state, 0, kSize, false, ""});
    return Encode(st);
  }
  SiteReport TakeSiteReport() {
    Call c = TakeCall(Endpoint::kSiteReport, "");
    auto r = ParseSiteReport(c.body);
    EXPECT_TRUE(r.ok()) << c.body;
    return r.ok() ? *r : SiteReport{};
  }

  // An order of the CCM run `id` at `url`.
  static FetchOrder RunOrder(const std::string& id, std::vector<std::string> members = {}, bool serve = false,
                             const std::string& url = "http://ccm") {
    FetchOrder o = Order(std::move(members), true, serve);
    o.ccm_id = id;
    o.ccm = url;
    o.source = url;
    return o;
  }
  // Every call made so far (answered or not) for the CCM's endpoints: whom
  // its stamp is for.
  std::vector<std::string> CcmRecipients() const {
    std::vector<std::string> to;
    for (const auto& c : made_)
      if (c.endpoint != Endpoint::kExpect && c.endpoint != Endpoint::kFetch && c.endpoint != Endpoint::kStatus &&
          c.endpoint != Endpoint::kMemberReport)
        to.push_back(c.to);
    return to;
  }

  RelayCore core_;
  RelayActions a_;
  std::vector<Call> made_;  // every call, also the answered ones
  Micros now_ = 1000 * kSeconds;
  Micros wake_ = proto::kNever;
  std::vector<Call> calls_;
  std::vector<StartFetch> fetches_;
  std::vector<StartChild> children_;
  std::vector<ChildId> cancelled_;
};

ServerState StateOf(const SiteReport& r, const std::string& name) {
  for (const auto& s : r.servers)
    if (s.name == name) return s.state;
  ADD_FAILURE() << name << " not in the report";
  return ServerState::kPending;
}

// ---- leader: fetching -------------------------------------------------------------

TEST_F(RelayCoreTest, OrderStartsAFetchFromItsSourceAndRepliesWithTheWatermark) {
  Reply r = Fetch(Order());
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"verified\":0"), std::string::npos) << r.body;
  ASSERT_EQ(fetches_.size(), 1u);
  EXPECT_EQ(fetches_[0].source_url, "http://ccm");
  EXPECT_EQ(fetches_[0].serial, kSerial);
}

TEST_F(RelayCoreTest, NewOrderFromAnotherSourceSwitchesAndResumes) {
  Fetch(Order());
  uint64_t first = fetches_.back().attempt;
  Update(first, true, 300, false);
  FetchOrder moved = Order();
  moved.source = "http://r9";
  moved.source_name = "r9";
  Fetch(moved);
  ASSERT_EQ(fetches_.size(), 2u);
  EXPECT_EQ(fetches_[1].source_url, "http://r9");
  EXPECT_GT(fetches_[1].attempt, first);
  // The replaced attempt's end is not a failed source.
  Update(first, true, 300, false, true, "cancelled");
  EXPECT_EQ(Pending(Endpoint::kSourceFailed), 0u);
  // The same source again changes nothing.
  Fetch(moved);
  EXPECT_EQ(fetches_.size(), 2u);
}

TEST_F(RelayCoreTest, FailedSourceAsksTheCcmAndResumesFromTheAnswer) {
  Fetch(Order());
  Update(fetches_.back().attempt, true, 400, false);
  Update(fetches_.back().attempt, true, 400, false, true, "timeout");
  Call c = Answer(Endpoint::kSourceFailed, 200, Encode(SourceAnswer{"http://r5", "r5"}));
  auto sf = ParseSourceFailed(c.body);
  ASSERT_TRUE(sf.ok());
  EXPECT_EQ(sf->verified, 400u);
  EXPECT_EQ(sf->source_url, "http://ccm");
  EXPECT_EQ(sf->error, "timeout");
  ASSERT_EQ(fetches_.size(), 2u);
  EXPECT_EQ(fetches_.back().source_url, "http://r5");
}

TEST_F(RelayCoreTest, UnansweredSourceFailedRetriesTheSameSourceAfterAPause) {
  Fetch(Order());
  Update(fetches_.back().attempt, false, 0, false, true, "refused");
  for (int i = 0; i < 3; ++i) {  // three tries, 300 ms * i apart
    Unreached(Endpoint::kSourceFailed, "", "timed out after 5000 ms");
    Advance(1 * kSeconds);
  }
  ASSERT_EQ(fetches_.size(), 2u);
  EXPECT_EQ(fetches_.back().source_url, "http://ccm");
}

// Nobody listens at the CCM's address: its run is over (killed; a rerun
// orders us again). The part is given up at once, the bytes kept.
TEST_F(RelayCoreTest, ASourceFailedThatFindsNobodyListeningGivesThePartUpUntilOrderedAgain) {
  Fetch(RunOrder("ccm-1"));
  Update(fetches_.back().attempt, true, 400, false);
  Update(fetches_.back().attempt, true, 400, false, true, "connection refused");
  for (int i = 0; i < 3; ++i) {
    Unreached(Endpoint::kSourceFailed);
    Advance(1 * kSeconds);
  }
  Advance(60 * kSeconds);
  EXPECT_EQ(fetches_.size(), 1u);
  EXPECT_EQ(Pending(Endpoint::kRelayFailed), 0u);
  Fetch(RunOrder("ccm-2"));
  ASSERT_EQ(fetches_.size(), 2u);
  EXPECT_EQ(core_.View()[0].verified, 400u);  // resumes at the watermark
}

TEST_F(RelayCoreTest, GivesUpAfterThirtyFailedSourcesTellsTheCcmAndSendsNoReport) {
  Fetch(Order({"m1"}, false));
  for (int i = 0; i <= 30; ++i) {
    Update(fetches_.back().attempt, false, 0, false, true, "refused");
    if (i < 30) Answer(Endpoint::kSourceFailed, 200, Encode(SourceAnswer{"http://x", "x"}));
  }
  EXPECT_EQ(fetches_.size(), 31u);
  EXPECT_EQ(Pending(Endpoint::kSourceFailed), 0u);
  RelayFailed f = TakeRelayFailed();
  EXPECT_FALSE(f.local);  // its sources failed, not itself
  EXPECT_EQ(f.relay, "r1");
  EXPECT_EQ(f.error, "gave up after 30 failed sources: refused");
  Advance(600 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);
  EXPECT_EQ(Pending(Endpoint::kExpect), 0u);
  EXPECT_EQ(core_.View()[0].phase, TransferPhase::kFailed);
}

TEST_F(RelayCoreTest, ProgressIsThrottledAndSentOnceMoreOnCompletion) {
  Fetch(Order());
  uint64_t at = fetches_.back().attempt;
  Update(at, true, 100, false);
  EXPECT_EQ(Pending(Endpoint::kProgress), 1u);
  Answer(Endpoint::kProgress);
  Advance(100 * kMillis);
  Update(at, true, 200, false);
  EXPECT_EQ(Pending(Endpoint::kProgress), 0u);  // within 500 ms of the last
  Advance(500 * kMillis);
  Update(at, true, 300, false);
  EXPECT_EQ(Pending(Endpoint::kProgress), 1u);
  Answer(Endpoint::kProgress);
  Update(at, true, kSize, true);
  Call c = Answer(Endpoint::kProgress);
  auto p = ParseProgress(c.body);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->complete);
  EXPECT_EQ(p->verified, kSize);
}

// ---- leader: serving the next leaders ------------------------------------------

TEST_F(RelayCoreTest, ServeLoopAsksOnceBytesAreVerifiedAndForwardsWithItselfAsSource) {
  Fetch(Order({}, true, true));
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
  Update(fetches_.back().attempt, true, 100, false);
  NextAnswer next;
  next.kind = NextAnswer::Kind::kNext;
  next.relay = "r2";
  next.url = "http://r2";
  next.order = Order();
  next.order.relay = "r2";
  Answer(Endpoint::kNext, 200, Encode(next));
  Call fwd = Answer(Endpoint::kFetch, 200, "{\"ok\":true}", "http://r2");
  auto o = ParseFetchOrder(fwd.body);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->source, "http://r1");
  EXPECT_EQ(o->source_name, "r1");
  EXPECT_EQ(Pending(Endpoint::kNext), 1u);  // and asks again at once
}

TEST_F(RelayCoreTest, ForwardThatFailsIsReportedAsNotifyFailed) {
  Fetch(Order({}, true, true));
  Update(fetches_.back().attempt, true, 100, false);
  NextAnswer next;
  next.kind = NextAnswer::Kind::kNext;
  next.relay = "r2";
  next.url = "http://r2";
  next.order = Order();
  Answer(Endpoint::kNext, 200, Encode(next));
  Unreached(Endpoint::kFetch);
  Advance(1 * kSeconds);
  Unreached(Endpoint::kFetch);  // two tries
  Call n = Answer(Endpoint::kNotifyFailed);
  auto nf = ParseNotifyFailed(n.body);
  ASSERT_TRUE(nf.ok());
  EXPECT_EQ(nf->to, "r2");
  EXPECT_EQ(nf->from, "r1");
  EXPECT_EQ(Pending(Endpoint::kNext), 1u);
}

TEST_F(RelayCoreTest, RetryAnswerIsClampedAndNoneLeftStopsAsking) {
  Fetch(Order({}, true, true));
  Update(fetches_.back().attempt, true, 100, false);
  Answer(Endpoint::kNext, 200, "{\"retry_ms\":1}");
  Advance(19 * kMillis);
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
  Advance(1 * kMillis);
  EXPECT_EQ(Pending(Endpoint::kNext), 1u);
  Answer(Endpoint::kNext, 200, "{\"retry_ms\":60000}");
  Advance(4999 * kMillis);
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
  Advance(1 * kMillis);
  Answer(Endpoint::kNext, 200, "{\"none_left\":true}");
  Advance(60 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
}

// ---- leader: the site phase ---------------------------------------------------------

TEST_F(RelayCoreTest, StreamingSiteStartsAtTheChunkTableWithAGrowingMulticast) {
  Fetch(Order({"m1", "m2"}));
  EXPECT_EQ(Pending(Endpoint::kExpect), 0u);
  Update(fetches_.back().attempt, true, 0, false);
  EXPECT_EQ(Pending(Endpoint::kExpect), 2u);
  Answer(Endpoint::kExpect, 200, "{}", "http://m1");
  EXPECT_EQ(Child(ChildKind::kMcastSend), nullptr);  // waits for every first answer
  Answer(Endpoint::kExpect, 200, "{}", "http://m2");
  const StartChild* send = Child(ChildKind::kMcastSend);
  ASSERT_NE(send, nullptr);
  EXPECT_TRUE(send->growing);
  EXPECT_EQ(send->final_size, kSize);
  EXPECT_EQ(send->receivers, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(Child(ChildKind::kApply), nullptr);  // not before we hold it all
}

TEST_F(RelayCoreTest, StoreAndForwardSiteWaitsForTheWholeFile) {
  Fetch(Order({"m1"}, false));
  Update(fetches_.back().attempt, true, 500, false);
  EXPECT_EQ(Pending(Endpoint::kExpect), 0u);
  Update(fetches_.back().attempt, true, kSize, true);
  Answer(Endpoint::kExpect);
  ASSERT_NE(Child(ChildKind::kMcastSend), nullptr);
  EXPECT_FALSE(Child(ChildKind::kMcastSend)->growing);
  EXPECT_NE(Child(ChildKind::kApply), nullptr);
}

TEST_F(RelayCoreTest, MemberThatAnswersLateJoinsTheSite) {
  LeadAndComplete(Order({"m1", "m2"}));
  Answer(Endpoint::kExpect, 200, "{}", "http://m1");
  Unreached(Endpoint::kExpect, "http://m2");
  EXPECT_EQ(Child(ChildKind::kMcastSend)->receivers, std::vector<std::string>{"m1"});
  Advance(300 * kMillis);
  Unreached(Endpoint::kExpect, "http://m2");
  Advance(600 * kMillis);
  Answer(Endpoint::kExpect, 200, "{}", "http://m2");
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  Report("m1", ServerState::kStaged);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);  // m2 joined: its report is awaited
  Report("m2", ServerState::kStaged);
  SiteReport r = TakeSiteReport();
  EXPECT_EQ(r.servers.size(), 3u);
  EXPECT_EQ(StateOf(r, "m2"), ServerState::kStaged);
  EXPECT_EQ(StateOf(r, "r1"), ServerState::kStaged);
}

TEST_F(RelayCoreTest, MemberNeverReachedIsUnreachableAfterMemberRetryWithBackOff) {
  LeadAndComplete(Order({"m1"}));
  Unreached(Endpoint::kExpect);
  std::vector<Micros> tries;
  Micros start = now_;
  for (int i = 0; i < 20 && now_ - start < 6 * kSeconds; ++i) {
    Advance(10 * kMillis);
    if (Pending(Endpoint::kExpect)) {
      tries.push_back(now_ - start);
      Unreached(Endpoint::kExpect);
    }
    if (wake_ != proto::kNever) Advance(wake_ - now_);
  }
  ASSERT_GE(tries.size(), 4u);
  EXPECT_NEAR(tries[0], 300 * kMillis, 20 * kMillis);
  EXPECT_NEAR(tries[1] - tries[0], 600 * kMillis, 20 * kMillis);
  EXPECT_LE(tries.back(), 5 * kSeconds + 20 * kMillis);
  Done(Child(ChildKind::kApply)->id);
  SiteReport r = TakeSiteReport();
  ASSERT_EQ(r.servers.size(), 2u);
  EXPECT_EQ(StateOf(r, "m1"), ServerState::kFailed);
  EXPECT_EQ(r.servers[1].error.rfind("unreachable: ", 0), 0u) << r.servers[1].error;
}

TEST_F(RelayCoreTest, ReportWaitsForEveryReceiverUntilMemberWait) {
  LeadAndComplete(Order({"m1", "m2"}));
  Answer(Endpoint::kExpect, 200, "{}", "http://m1");
  Answer(Endpoint::kExpect, 200, "{}", "http://m2");
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  Report("m1", ServerState::kStaged);
  Advance(59 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);
  Advance(1 * kSeconds);
  SiteReport r = TakeSiteReport();
  EXPECT_EQ(StateOf(r, "m1"), ServerState::kStaged);
  EXPECT_EQ(StateOf(r, "m2"), ServerState::kFailed);
  EXPECT_EQ(r.site, "s1");
  EXPECT_EQ(r.leader, "r1");
}

TEST_F(RelayCoreTest, SiteReportIsTriedTenTimes) {
  LeadAndComplete(Order());
  Done(Child(ChildKind::kApply)->id);
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(Pending(Endpoint::kSiteReport), 1u) << i;
    Unreached(Endpoint::kSiteReport);
    Advance(5 * kSeconds);
  }
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);
  EXPECT_EQ(core_.View()[0].phase, TransferPhase::kReported);
}

TEST_F(RelayCoreTest, LeadersFailedApplyIsToldAtOnceWithCmApplysExitCodeAndItStopsLeading) {
  LeadAndComplete(Order({"m1"}));
  Answer(Endpoint::kExpect);
  ChildId send = Child(ChildKind::kMcastSend)->id;
  Done(Child(ChildKind::kApply)->id, 9, false, false, "cm-apply: error: no space left on device");
  RelayFailed f = TakeRelayFailed();
  EXPECT_EQ(f.serial, kSerial);
  EXPECT_EQ(f.apply_exit, 9);
  EXPECT_EQ(f.error, "cm-apply: error: no space left on device");
  EXPECT_TRUE(f.local);
  EXPECT_EQ(cancelled_, std::vector<ChildId>{send});  // no more multicast
  Done(send, 143, true);
  Report("m1", ServerState::kStaged);
  Advance(120 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);  // the CCM replaces it
  EXPECT_EQ(core_.View()[0].phase, TransferPhase::kFailed);
}

TEST_F(RelayCoreTest, OwnFetchFailureCancelsTheMulticastAndSendsNoReport) {
  Fetch(Order({"m1"}));
  Update(fetches_.back().attempt, true, 10, false);
  Answer(Endpoint::kExpect);
  ASSERT_NE(Child(ChildKind::kMcastSend), nullptr);
  RelayCoreOptions o = Options();
  for (int i = 0; i <= o.max_source_failures; ++i) {
    Update(fetches_.back().attempt, true, 10, false, true, "refused");
    if (Pending(Endpoint::kSourceFailed)) Answer(Endpoint::kSourceFailed, 200, Encode(SourceAnswer{"http://x", "x"}));
  }
  ASSERT_EQ(cancelled_.size(), 1u);
  EXPECT_EQ(cancelled_[0], Child(ChildKind::kMcastSend)->id);
  Done(cancelled_[0], 143, true);
  Report("m1", ServerState::kFailed);
  Advance(120 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);
  EXPECT_EQ(Pending(Endpoint::kRelayFailed), 1u);
}

// ---- leader: failures of its own reach the CCM at once (issue 12) ----------------------

TEST_F(RelayCoreTest, AFullSpoolIsTheRelaysOwnFailureNotItsSources) {
  Fetch(Order({"m1"}));
  Update(fetches_.back().attempt, false, 0, false, true, "/spool: no space: need 1000, have 10", FetchFault::kLocal);
  EXPECT_EQ(Pending(Endpoint::kSourceFailed), 0u);  // not 30 "source failed" in 70 ms
  RelayFailed f = TakeRelayFailed();
  EXPECT_TRUE(f.local);
  EXPECT_EQ(f.error, "/spool: no space: need 1000, have 10");
  EXPECT_EQ(f.apply_exit, 0);
  EXPECT_EQ(fetches_.size(), 1u);
  Advance(600 * kSeconds);
  EXPECT_EQ(fetches_.size(), 1u);
  EXPECT_EQ(Pending(Endpoint::kExpect), 0u);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);
  EXPECT_EQ(core_.View()[0].phase, TransferPhase::kFailed);
}

TEST_F(RelayCoreTest, ALocalFailureMidTransferStopsTheMulticastAndTheServing) {
  Fetch(Order({"m1"}, true, true));
  Update(fetches_.back().attempt, true, 100, false);
  Answer(Endpoint::kExpect);
  ASSERT_NE(Child(ChildKind::kMcastSend), nullptr);
  Call next = TakeCall(Endpoint::kNext, "");
  Update(fetches_.back().attempt, true, 100, false, true, "/spool/7.cma.part: Input/output error", FetchFault::kLocal);
  EXPECT_EQ(cancelled_, std::vector<ChildId>{Child(ChildKind::kMcastSend)->id});
  EXPECT_TRUE(TakeRelayFailed().local);
  core_.OnCallDone(now_, CallResult{next.id, true, 200, "{\"retry_ms\":10}"}, &a_);
  Collect();
  Advance(10 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
}

TEST_F(RelayCoreTest, ASignatureRefusedFromTheCcmIsTheRelaysOwnAtOnce) {
  Fetch(Order());
  Update(fetches_.back().attempt, false, 0, false, true, "signed with another key", FetchFault::kAuth);
  EXPECT_EQ(Pending(Endpoint::kSourceFailed), 0u);
  RelayFailed f = TakeRelayFailed();
  EXPECT_TRUE(f.local);
  EXPECT_EQ(f.error, "signed with another key (from the CCM)");
}

TEST_F(RelayCoreTest, ASignatureRefusedFromARelayIsItsSourcesUntilASecondSourceSaysTheSame) {
  FetchOrder o = Order();
  o.source = "http://r5";
  o.source_name = "r5";
  Fetch(o);
  Update(fetches_.back().attempt, false, 0, false, true, "bad signature", FetchFault::kAuth);
  EXPECT_EQ(Pending(Endpoint::kRelayFailed), 0u);
  Answer(Endpoint::kSourceFailed, 200, Encode(SourceAnswer{"http://r6", "r6"}));
  Update(fetches_.back().attempt, false, 0, false, true, "bad signature", FetchFault::kAuth);
  EXPECT_EQ(Pending(Endpoint::kSourceFailed), 0u);
  RelayFailed f = TakeRelayFailed();
  EXPECT_TRUE(f.local);
  EXPECT_EQ(f.error, "bad signature (from http://r5 and http://r6)");
}

TEST_F(RelayCoreTest, AMemberThatRefusesTheExpectIsReportedFailedWithTheRefusalAtOnce) {
  LeadAndComplete(Order({"m1"}));
  Answer(Endpoint::kExpect, 403, EncodeError("forbidden: this relay is 'm-1', the order is for 'm1'"));
  EXPECT_EQ(Child(ChildKind::kMcastSend), nullptr);
  Advance(100 * kMillis);
  EXPECT_EQ(Pending(Endpoint::kExpect), 0u);  // not tried again
  Done(Child(ChildKind::kApply)->id);
  SiteReport r = TakeSiteReport();
  EXPECT_EQ(StateOf(r, "m1"), ServerState::kFailed);
  EXPECT_EQ(r.servers[1].error,
            "refused /v1/expect: HTTP 403: forbidden: this relay is 'm-1', the order is for 'm1'");
}

// ---- reruns converge (issue 12) ------------------------------------------------------

TEST_F(RelayCoreTest, AReportedSerialOrderedAgainRunsTheSitePhaseAndItsOwnApplyAgain) {
  LeadAndComplete(Order({"m1"}));
  Answer(Endpoint::kExpect);
  Done(Child(ChildKind::kMcastSend)->id);
  ChildId apply = Child(ChildKind::kApply)->id;
  Done(apply);
  Report("m1", ServerState::kStaged);
  Answer(Endpoint::kSiteReport);
  ASSERT_EQ(core_.View()[0].phase, TransferPhase::kReported);
  const size_t fetches = fetches_.size();
  // The CCM died and the same push runs again.
  Reply r = Fetch(Order({"m1"}));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(fetches_.size(), fetches);  // the file held is not fetched again
  Call expect = Answer(Endpoint::kExpect, 200, "{}", "http://m1");
  EXPECT_EQ(ParseExpect(expect.body)->serial, kSerial);
  ASSERT_NE(Child(ChildKind::kApply)->id, apply);  // cm-apply runs again (idempotent)
  Done(Child(ChildKind::kApply)->id);
  Done(Child(ChildKind::kMcastSend)->id);
  Report("m1", ServerState::kStaged);
  SiteReport again = TakeSiteReport();
  EXPECT_EQ(StateOf(again, "r1"), ServerState::kStaged);
  EXPECT_EQ(StateOf(again, "m1"), ServerState::kStaged);
}

TEST_F(RelayCoreTest, AStoppedLeaderOrderedAgainTriesItsPartAgain) {
  LeadAndComplete(Order());
  Done(Child(ChildKind::kApply)->id, 9, false, false, "cm-apply: error: no space left on device");
  TakeRelayFailed();
  const size_t fetches = fetches_.size();
  Fetch(Order());
  EXPECT_EQ(fetches_.size(), fetches);
  Done(Child(ChildKind::kApply)->id);  // space was freed meanwhile
  EXPECT_EQ(StateOf(TakeSiteReport(), "r1"), ServerState::kStaged);
}

TEST_F(RelayCoreTest, ADuplicateOrderWhileThePartRunsIsANoOp) {
  Fetch(Order({"m1"}));
  Update(fetches_.back().attempt, true, 100, false);
  Answer(Endpoint::kExpect);
  const size_t fetches = fetches_.size(), children = children_.size();
  Fetch(Order({"m1"}));
  EXPECT_EQ(fetches_.size(), fetches);
  EXPECT_EQ(children_.size(), children);
  EXPECT_EQ(Pending(Endpoint::kExpect), 0u);
}

// ---- another CCM run takes over (issue 12: the CCM killed at its first order) ---------

// The old run's CCM died while we asked it for another source; the rerun's
// CCM (a new ccm_id at the same URL) orders the same serial: the fetch
// continues at once with the bytes held, the old run's queued calls are
// never sent, and everything after goes to the new run, stamped for it.
TEST_F(RelayCoreTest, AnOrderFromAnotherCcmRunWhileFetchingTakesOverAndStampsForIt) {
  Fetch(RunOrder("ccm-old", {"m1"}, true));
  Update(fetches_.back().attempt, true, 400, false);
  Unreached(Endpoint::kNext);
  Update(fetches_.back().attempt, true, 400, false, true, "connection refused");
  Unreached(Endpoint::kSourceFailed);  // queued to be tried again, for ccm-old
  made_.clear();
  const size_t fetches = fetches_.size();
  Reply r = Fetch(RunOrder("ccm-new", {"m1"}, true));
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(fetches_.size(), fetches + 1) << "the fetch waits for the dead run's CCM";
  EXPECT_EQ(fetches_.back().source_url, "http://ccm");
  Advance(5 * kSeconds);
  for (const auto& to : CcmRecipients()) EXPECT_EQ(to, "ccm-new");
  // Whatever the old run's calls still in flight get back changes nothing.
  while (Pending(Endpoint::kSourceFailed)) Answer(Endpoint::kSourceFailed, 403, "{\"error\":\"forbidden\"}");
  while (Pending(Endpoint::kNext)) Answer(Endpoint::kNext, 200, "{\"none_left\":true}");
  const uint64_t at = fetches_.back().attempt;
  Update(at, true, kSize, true);
  Update(at, true, kSize, true, true);
  Answer(Endpoint::kExpect);
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  Report("m1", ServerState::kStaged);
  Call rep = TakeCall(Endpoint::kSiteReport, "");
  EXPECT_EQ(rep.to, "ccm-new");
  for (const auto& to : CcmRecipients()) EXPECT_EQ(to, "ccm-new");
}

// The site report was on its way to the old run when the new run's order
// came: the new run gets a site report of its own (the old one's answer
// changes nothing).
TEST_F(RelayCoreTest, AnOrderFromAnotherCcmRunWhileTheReportIsOnItsWayBringsTheNewRunAReport) {
  LeadAndComplete(RunOrder("ccm-old", {"m1"}));
  Answer(Endpoint::kExpect);
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  Report("m1", ServerState::kStaged);
  Call old = TakeCall(Endpoint::kSiteReport, "");  // in flight, unanswered
  EXPECT_EQ(old.to, "ccm-old");
  Fetch(RunOrder("ccm-new", {"m1"}));
  core_.OnCallDone(now_, CallResult{old.id, true, 200, "{\"ok\":true}"}, &a_);
  Collect();
  Answer(Endpoint::kExpect, 200, "{}", "http://m1");
  Done(Child(ChildKind::kApply)->id);
  Done(Child(ChildKind::kMcastSend)->id);
  Report("m1", ServerState::kStaged);
  Call again = TakeCall(Endpoint::kSiteReport, "");
  EXPECT_EQ(again.to, "ccm-new");
  auto r = ParseSiteReport(again.body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(StateOf(*r, "m1"), ServerState::kStaged);
  EXPECT_EQ(StateOf(*r, "r1"), ServerState::kStaged);
}

// A relay-failed queued for the old run is never sent once a new run took
// over: the new CCM would refuse it ("addressed to another server").
TEST_F(RelayCoreTest, ARelayFailedQueuedForTheOldRunIsNeverSentToTheNewRun) {
  LeadAndComplete(RunOrder("ccm-old"));
  Done(Child(ChildKind::kApply)->id, 9, false, false, "cm-apply: error: no space left on device");
  Unreached(Endpoint::kRelayFailed);
  Fetch(RunOrder("ccm-new"));
  Advance(30 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kRelayFailed), 0u);
  Done(Child(ChildKind::kApply)->id);
  EXPECT_EQ(TakeCall(Endpoint::kSiteReport, "").to, "ccm-new");
  for (const auto& c : made_) {
    if (c.endpoint == Endpoint::kRelayFailed) {
      EXPECT_EQ(c.to, "ccm-old") << "tried once before the new run";
    }
  }
  EXPECT_EQ(std::count_if(made_.begin(), made_.end(), [](const Call& c) { return c.endpoint == Endpoint::kRelayFailed; }),
            1);
}

// A site phase in progress goes on for the new run, takes the members its
// order adds, and reports to it.
TEST_F(RelayCoreTest, ASitePhaseInProgressTakesTheNewRunsMembersAndReportsToIt) {
  LeadAndComplete(RunOrder("ccm-old", {"m1"}));
  Answer(Endpoint::kExpect);
  const size_t children = children_.size();
  Fetch(RunOrder("ccm-new", {"m1", "m2"}));
  EXPECT_EQ(children_.size(), children);  // the multicast and cm-apply go on
  Answer(Endpoint::kExpect, 200, "{}", "http://m2");
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  Report("m1", ServerState::kStaged);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u) << "the report waits for m2";
  Report("m2", ServerState::kStaged);
  Call rep = TakeCall(Endpoint::kSiteReport, "");
  EXPECT_EQ(rep.to, "ccm-new");
  auto r = ParseSiteReport(rep.body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(StateOf(*r, "m2"), ServerState::kStaged);
}

TEST_F(RelayCoreTest, ARepeatFromTheSameRunIsANoOpWhateverWasInFlight) {
  Fetch(RunOrder("ccm-1"));
  Update(fetches_.back().attempt, true, 400, false);
  Update(fetches_.back().attempt, true, 400, false, true, "timeout");
  const size_t fetches = fetches_.size();
  Fetch(RunOrder("ccm-1"));  // the CCM's earlier try reached us
  EXPECT_EQ(fetches_.size(), fetches);
  Answer(Endpoint::kSourceFailed, 200, Encode(SourceAnswer{"http://r5", "r5"}));  // still counts
  ASSERT_EQ(fetches_.size(), fetches + 1);
  EXPECT_EQ(fetches_.back().source_url, "http://r5");
}

// ---- a refusing CCM ends the run's part at once (issue 12: /v1/next refused forever) ----

TEST_F(RelayCoreTest, ARefusedNextEndsServingAtOnceAndIsNeverAskedAgain) {
  Fetch(RunOrder("ccm-1", {}, true));
  Update(fetches_.back().attempt, true, 100, false);
  Answer(Endpoint::kNext, 403, "{\"error\":\"forbidden: addressed to another server\"}");
  Advance(120 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
  const uint64_t at = fetches_.back().attempt;
  Update(at, true, kSize, true);
  Update(at, true, kSize, true, true);
  Done(Child(ChildKind::kApply)->id);
  Answer(Endpoint::kSiteReport);
  while (Pending(Endpoint::kProgress)) Answer(Endpoint::kProgress);
  Advance(120 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
  EXPECT_FALSE(core_.InUse(kSerial));
}

TEST_F(RelayCoreTest, ANextThatNeverReachesTheCcmEndsServingAfterServeGiveUp) {
  Fetch(RunOrder("ccm-1", {}, true));
  Update(fetches_.back().attempt, true, 100, false);
  int asked = 0;
  for (; asked < 1000 && Pending(Endpoint::kNext); ++asked) {
    Unreached(Endpoint::kNext, "", "timed out after 5000 ms");
    Advance(1 * kSeconds);
  }
  EXPECT_LT(asked, 1000);
  EXPECT_GE(now_ - 1000 * kSeconds, 60 * kSeconds);
  EXPECT_LE(now_ - 1000 * kSeconds, 65 * kSeconds);
}

TEST_F(RelayCoreTest, ANextThatFindsNobodyListeningEndsServingAtOnce) {
  Fetch(RunOrder("ccm-1", {}, true));
  Update(fetches_.back().attempt, true, 100, false);
  for (int i = 0; i < 2; ++i) {  // its two tries
    Call c = TakeCall(Endpoint::kNext, "");
    core_.OnCallDone(now_, CallResult{c.id, false, 0, "POST http://ccm/v1/next: Connection refused"}, &a_);
    Collect();
    Advance(1 * kSeconds);
  }
  Advance(60 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kNext), 0u);
}

// The run's CCM ordered the next part (the commit): it answers /v1/next for
// no other serial, so serving the stage part ends without asking again.
TEST_F(RelayCoreTest, AnOrderOfTheSameRunForAnotherSerialEndsServingTheEarlierOne) {
  Fetch(RunOrder("ccm-1", {}, true));
  const uint64_t at = fetches_.back().attempt;
  Update(at, true, kSize, true);
  Update(at, true, kSize, true, true);
  Answer(Endpoint::kNext, 200, "{\"retry_ms\":3000}");
  Done(Child(ChildKind::kApply)->id);
  Answer(Endpoint::kSiteReport);
  while (Pending(Endpoint::kProgress)) Answer(Endpoint::kProgress);
  FetchOrder commit = RunOrder("ccm-1");
  commit.serial = kSerial + 1;
  commit.kind = TransferKind::kCommit;
  Fetch(commit);
  EXPECT_FALSE(core_.InUse(kSerial));
  Advance(60 * kSeconds);
  for (const auto& c : calls_) EXPECT_FALSE(c.endpoint == Endpoint::kNext && ParseNextAsk(c.body)->serial == kSerial);
}

// Issue 12: every relay kept one fd per commit serial: a commit assignment
// has no chunks (nothing is ever "verified"), so its leader never asked
// /v1/next and stayed busy serving forever.
TEST_F(RelayCoreTest, ALeaderOfACommitAssignmentAsksNextOnceCompleteAndEnds) {
  FetchOrder o = RunOrder("ccm-1", {}, true);
  o.kind = TransferKind::kCommit;
  Fetch(o);
  const uint64_t at = fetches_.back().attempt;
  core_.OnFetchUpdate(now_, FetchUpdate{kSerial, at, true, 0, 384, true, true, "", FetchFault::kNone}, &a_);
  Collect();
  ASSERT_EQ(Pending(Endpoint::kNext), 1u);
  Answer(Endpoint::kNext, 200, "{\"none_left\":true}");
  Done(Child(ChildKind::kApply)->id);
  Answer(Endpoint::kSiteReport);
  while (Pending(Endpoint::kProgress)) Answer(Endpoint::kProgress);
  EXPECT_FALSE(core_.InUse(kSerial));
}

// A CCM's URL is one process at a time: an order of a new run at the same
// URL (the next cron job) means the old run is gone. Its serial's serving
// ends and its report still queued is dropped: the new CCM would refuse
// both ("addressed to another server").
TEST_F(RelayCoreTest, AnOrderOfANewRunAtTheSameUrlEndsWhatTheOldRunsSerialsStillSendIt) {
  Fetch(RunOrder("ccm-1", {}, true));
  const uint64_t at = fetches_.back().attempt;
  Update(at, true, kSize, true);
  Update(at, true, kSize, true, true);
  Answer(Endpoint::kNext, 200, "{\"retry_ms\":3000}");
  Done(Child(ChildKind::kApply)->id);
  Unreached(Endpoint::kSiteReport);  // the CCM exited: queued to be tried again
  while (Pending(Endpoint::kProgress)) Answer(Endpoint::kProgress);
  FetchOrder next = RunOrder("ccm-2");
  next.serial = kSerial + 1;
  made_.clear();
  Fetch(next);
  EXPECT_FALSE(core_.InUse(kSerial));
  Advance(60 * kSeconds);
  for (const auto& c : made_) EXPECT_NE(c.to, "ccm-1") << EndpointPath(c.endpoint);
  EXPECT_EQ(core_.View()[0].phase, TransferPhase::kReported);
}

// A run at another URL (a concurrent CCM) changes nothing for it.
TEST_F(RelayCoreTest, AnOrderOfARunAtAnotherUrlLeavesTheOthersAlone) {
  Fetch(RunOrder("ccm-1", {}, true));
  Update(fetches_.back().attempt, true, 100, false);
  Answer(Endpoint::kNext, 200, "{\"retry_ms\":1000}");
  FetchOrder other = RunOrder("ccm-2", {}, false, "http://ccm2");
  other.serial = kSerial + 1;
  Fetch(other);
  Advance(1 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kNext), 1u);
}

TEST_F(RelayCoreTest, ARefusedProgressIsNotSentAgainForThatRun) {
  Fetch(RunOrder("ccm-1"));
  const uint64_t at = fetches_.back().attempt;
  Update(at, true, 100, false);
  Answer(Endpoint::kProgress, 409, "{\"error\":\"the job is over\"}");
  Advance(1 * kSeconds);
  Update(at, true, 600, false);
  Update(at, true, kSize, true);
  EXPECT_EQ(Pending(Endpoint::kProgress), 0u);
}

TEST_F(RelayCoreTest, ARefusedSourceFailedEndsThePartWithoutRelayFailed) {
  Fetch(RunOrder("ccm-1", {"m1"}));
  Update(fetches_.back().attempt, true, 100, false);
  Answer(Endpoint::kExpect);
  ASSERT_NE(Child(ChildKind::kMcastSend), nullptr);
  Update(fetches_.back().attempt, true, 100, false, true, "HTTP 404: serial not served here");
  const size_t fetches = fetches_.size();
  Answer(Endpoint::kSourceFailed, 409, "{\"error\":\"no such transfer\"}");
  Advance(60 * kSeconds);
  EXPECT_EQ(fetches_.size(), fetches);
  EXPECT_EQ(Pending(Endpoint::kRelayFailed), 0u);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);
  EXPECT_EQ(cancelled_, std::vector<ChildId>{Child(ChildKind::kMcastSend)->id});
  Done(Child(ChildKind::kMcastSend)->id, 143, true);
  while (Pending(Endpoint::kProgress)) Answer(Endpoint::kProgress);
  EXPECT_FALSE(core_.InUse(kSerial));
  // A later order runs the part again.
  Fetch(RunOrder("ccm-2", {"m1"}));
  EXPECT_EQ(fetches_.size(), fetches + 1);
}

// ---- the release each server runs (issue 12: the record must be the truth) -------------

TEST_F(RelayCoreTest, ReportsCarryTheReleaseCmApplySaysTheServerRuns) {
  LeadAndComplete(Order({"m1"}));
  Answer(Endpoint::kExpect);
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id, 0, false, false, "", "s000000000006-w30");
  core_.OnMemberReport(now_,
                       MemberReport{kSerial, ServerResult{"m1", ServerState::kStaged, "", Via::kMulticast, 0,
                                                          "s000000000006-w30"}},
                       &a_);
  Collect();
  SiteReport r = TakeSiteReport();
  for (const auto& s : r.servers) EXPECT_EQ(s.release, "s000000000006-w30") << s.name;
}

TEST_F(RelayCoreTest, AMemberReportsTheReleaseItsCmApplySaid) {
  ExpectEv(ExpectFrom("L"));
  Done(Child(ChildKind::kMcastRecv)->id, 0, false, true);
  Done(Child(ChildKind::kApply)->id, 0, false, false, "", "s000000000007-j");
  auto r = ParseMemberReport(TakeCall(Endpoint::kMemberReport, "http://L").body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->result.release, "s000000000007-j");
}

TEST_F(RelayCoreTest, AMemberAskedAgainForASerialItAppliedReportsAtOnce) {
  ExpectEv(ExpectFrom("L"));
  Done(Child(ChildKind::kMcastRecv)->id, 0, false, true);
  Done(Child(ChildKind::kApply)->id);
  Answer(Endpoint::kMemberReport, 200, "{}", "http://L");
  const size_t children = children_.size();
  ExpectEv(ExpectFrom("L"));  // the same leader, ordered again
  EXPECT_EQ(children_.size(), children);
  EXPECT_EQ(ParseMemberReport(Answer(Endpoint::kMemberReport, 200, "{}", "http://L").body)->result.state,
            ServerState::kStaged);
}

// ---- a member that comes back (issue 12) ----------------------------------------------

TEST_F(RelayCoreTest, AMemberRestartedMidPushIsAskedAgainAndReportsLongBeforeMemberWait) {
  LeadAndComplete(Order({"m1", "m2"}));
  Answer(Endpoint::kExpect, 200, "{}", "http://m1");
  Answer(Endpoint::kExpect, 200, "{}", "http://m2");
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  Report("m1", ServerState::kStaged);
  // m2 restarted and lost the serial; it never reports by itself.
  Advance(3 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kStatus), 1u);  // m1 reported: only m2 is probed
  Call probe = Answer(Endpoint::kStatus, 200, StatusBody("m2"), "http://m2");
  EXPECT_TRUE(probe.body.empty());
  Call again = Answer(Endpoint::kExpect, 200, "{}", "http://m2");
  EXPECT_EQ(again.query, "?unicast=1");  // the multicast is over
  EXPECT_EQ(again.to, "m2");
  Report("m2", ServerState::kStaged);
  SiteReport r = TakeSiteReport();
  EXPECT_EQ(StateOf(r, "m2"), ServerState::kStaged);
  EXPECT_LT(now_, 1000 * kSeconds + 10 * kSeconds);
}

TEST_F(RelayCoreTest, AMemberThatStillWorksOnTheSerialIsLeftAlone) {
  LeadAndComplete(Order({"m1"}));
  Answer(Endpoint::kExpect);
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  for (int i = 0; i < 5; ++i) {
    Advance(3 * kSeconds);
    Answer(Endpoint::kStatus, 200, StatusBody("m1", "receiving"));
    EXPECT_EQ(Pending(Endpoint::kExpect), 0u);
  }
  Report("m1", ServerState::kStaged);
  EXPECT_EQ(StateOf(TakeSiteReport(), "m1"), ServerState::kStaged);
}

TEST_F(RelayCoreTest, AMemberUnreachablePastMemberRetryIsReportedFailedWithTheReason) {
  LeadAndComplete(Order({"m1"}));
  Answer(Endpoint::kExpect);
  Done(Child(ChildKind::kMcastSend)->id);
  Done(Child(ChildKind::kApply)->id);
  Advance(3 * kSeconds);
  Unreached(Endpoint::kStatus);
  Advance(3 * kSeconds);
  Unreached(Endpoint::kStatus);
  EXPECT_EQ(Pending(Endpoint::kSiteReport), 0u);  // 3 s < member_retry (5 s)
  Advance(3 * kSeconds);
  Unreached(Endpoint::kStatus);
  SiteReport r = TakeSiteReport();
  EXPECT_EQ(StateOf(r, "m1"), ServerState::kFailed);
  EXPECT_EQ(r.servers[0].error, "unreachable for 6 s: connection refused");
  EXPECT_LT(now_, 1000 * kSeconds + 60 * kSeconds);  // member_wait is 60 s here
}

TEST_F(RelayCoreTest, AMemberToldTheMulticastIsOverFetchesOverHttpAtOnce) {
  ExpectEv(ExpectFrom("L"), /*unicast=*/true);
  EXPECT_EQ(Child(ChildKind::kMcastRecv), nullptr);
  ASSERT_EQ(fetches_.size(), 1u);
  EXPECT_EQ(fetches_[0].source_url, "http://L");
}

TEST_F(RelayCoreTest, AMemberWhoseSpoolIsFullFailsAtOnceWithTheReason) {
  ExpectEv(ExpectFrom("L", ""));
  Update(fetches_.back().attempt, false, 0, false, true, "no space", FetchFault::kLocal);
  EXPECT_EQ(fetches_.size(), 1u);
  auto r = ParseMemberReport(Answer(Endpoint::kMemberReport).body);
  EXPECT_EQ(r->result.state, ServerState::kFailed);
  EXPECT_EQ(r->result.error, "could not receive: no space");
}

TEST_F(RelayCoreTest, ForgetDropsOnlyAnIdleSerial) {
  Fetch(Order());
  EXPECT_FALSE(core_.Forget(kSerial));
  Update(fetches_.back().attempt, true, kSize, true);
  Update(fetches_.back().attempt, true, kSize, true, true);
  Done(Child(ChildKind::kApply)->id);
  EXPECT_FALSE(core_.Forget(kSerial));  // the site report is in flight
  Answer(Endpoint::kSiteReport);
  Answer(Endpoint::kProgress);
  EXPECT_TRUE(core_.Forget(kSerial));
  EXPECT_TRUE(core_.View().empty());
}

// ---- member ----------------------------------------------------------------------

TEST_F(RelayCoreTest, MemberReceivesByMulticastAppliesAndReports) {
  ExpectEv(ExpectFrom("L"));
  const StartChild* recv = Child(ChildKind::kMcastRecv);
  ASSERT_NE(recv, nullptr);
  EXPECT_EQ(recv->group, "239.1.1.1:5000");
  EXPECT_EQ(recv->idle_timeout_s, 15);
  Done(recv->id, 0, false, true);
  Done(Child(ChildKind::kApply)->id);
  Call c = Answer(Endpoint::kMemberReport, 200, "{}", "http://L");
  auto r = ParseMemberReport(c.body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->result.state, ServerState::kStaged);
  EXPECT_EQ(r->result.via, Via::kMulticast);
  EXPECT_EQ(core_.View()[0].phase, TransferPhase::kStaged);
}

TEST_F(RelayCoreTest, FailedMulticastFallsBackToFiveHttpAttemptsFromTheLeader) {
  ExpectEv(ExpectFrom("L"));
  Done(Child(ChildKind::kMcastRecv)->id, 1, false, false, "timeout");
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(fetches_.size(), static_cast<size_t>(i + 1));
    EXPECT_EQ(fetches_.back().source_url, "http://L");
    Update(fetches_.back().attempt, false, 0, false, true, "refused");
    Advance(Micros(500 * kMillis) * (i + 1));
  }
  EXPECT_EQ(fetches_.size(), 5u);
  Call c = Answer(Endpoint::kMemberReport);
  auto r = ParseMemberReport(c.body);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->result.state, ServerState::kFailed);
  EXPECT_EQ(r->result.via, Via::kUnicast);
  EXPECT_EQ(r->result.error, "could not receive: refused");
}

TEST_F(RelayCoreTest, MemberWithoutAGroupFetchesOverHttpAtOnce) {
  ExpectEv(ExpectFrom("L", ""));
  EXPECT_EQ(Child(ChildKind::kMcastRecv), nullptr);
  ASSERT_EQ(fetches_.size(), 1u);
  Update(fetches_.back().attempt, true, kSize, true, true);
  ASSERT_NE(Child(ChildKind::kApply), nullptr);
}

TEST_F(RelayCoreTest, ExpectFromAnotherLeaderCancelsTheReceiveAndStartsOver) {
  ExpectEv(ExpectFrom("L1"));
  ChildId first = Child(ChildKind::kMcastRecv)->id;
  ExpectEv(ExpectFrom("L2"));
  ASSERT_EQ(cancelled_, std::vector<ChildId>{first});
  Done(first, 143, true);
  const StartChild* again = Child(ChildKind::kMcastRecv);
  ASSERT_NE(again->id, first);
  EXPECT_EQ(Pending(Endpoint::kMemberReport), 0u);  // the superseded run is not reported
  Done(again->id, 0, false, true);
  Done(Child(ChildKind::kApply)->id);
  Answer(Endpoint::kMemberReport, 200, "{}", "http://L2");
}

TEST_F(RelayCoreTest, AppliedMemberReportsAgainToANewLeaderWithoutReceiving) {
  ExpectEv(ExpectFrom("L1"));
  Done(Child(ChildKind::kMcastRecv)->id, 0, false, true);
  Done(Child(ChildKind::kApply)->id);
  Answer(Endpoint::kMemberReport, 200, "{}", "http://L1");
  size_t children = children_.size();
  ExpectEv(ExpectFrom("L2"));
  EXPECT_EQ(children_.size(), children);
  Call c = Answer(Endpoint::kMemberReport, 200, "{}", "http://L2");
  EXPECT_EQ(ParseMemberReport(c.body)->result.state, ServerState::kStaged);
}

TEST_F(RelayCoreTest, NewLeaderDuringTheReportGetsItsOwnReport) {
  ExpectEv(ExpectFrom("L1"));
  Done(Child(ChildKind::kMcastRecv)->id, 0, false, true);
  Done(Child(ChildKind::kApply)->id);
  ExpectEv(ExpectFrom("L2"));  // while the report to L1 is in flight
  Unreached(Endpoint::kMemberReport, "http://L1");
  for (int i = 0; i < 9; ++i) {
    Advance(3 * kSeconds);
    Unreached(Endpoint::kMemberReport, "http://L1");
  }
  Answer(Endpoint::kMemberReport, 200, "{}", "http://L2");
}

TEST_F(RelayCoreTest, PromotedMemberStopsReceiving) {
  ExpectEv(ExpectFrom("L1"));
  ChildId recv = Child(ChildKind::kMcastRecv)->id;
  Fetch(Order());
  EXPECT_EQ(cancelled_, std::vector<ChildId>{recv});
  ASSERT_EQ(fetches_.size(), 1u);  // as the leader now
  EXPECT_EQ(fetches_[0].source_url, "http://ccm");
  Done(recv, 143, true);
  Advance(10 * kSeconds);
  EXPECT_EQ(Pending(Endpoint::kMemberReport), 0u);
}

TEST_F(RelayCoreTest, MemberReportForAnUnknownSerialIsRefusedAndKeepsTheTimer) {
  Fetch(Order({}, true, true));
  Update(fetches_.back().attempt, true, 100, false);
  Answer(Endpoint::kNext, 200, "{\"retry_ms\":100}");
  ASSERT_NE(wake_, proto::kNever);
  Micros wake = wake_;
  Reply r = core_.OnMemberReport(now_, MemberReport{99, ServerResult{"m", ServerState::kStaged}}, &a_);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(a_.wake_at, wake);  // every event's wake_at replaces the last one
}

TEST_F(RelayCoreTest, FileHeldFromAnEarlierRunIsServedAndAppliedWithoutFetching) {
  core_.OnFetchUpdate(now_, FetchUpdate{kSerial, 0, true, kSize, kSize, true}, &a_);
  Collect();
  Reply r = Fetch(Order({}, true, true));
  EXPECT_NE(r.body.find("\"complete\":true"), std::string::npos);
  EXPECT_TRUE(fetches_.empty());
  EXPECT_EQ(Pending(Endpoint::kNext), 1u);
  EXPECT_NE(Child(ChildKind::kApply), nullptr);
}

}  // namespace
}  // namespace cm::push
