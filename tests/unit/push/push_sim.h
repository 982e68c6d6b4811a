// A deterministic simulation of a whole push: one CCM (JobCore) and every
// relay (RelayCore) of up to dozens of sites, the real cores with their real
// JSON messages, on virtual time, under a seeded fault model. For
// push_sim_test.cc.
//
// Model (everything the edges do, reduced to what the protocol sees):
//  - Calls: a request reaches its callee after a random one-way delay and
//    the answer comes back after another; it fails (reached = false) when
//    lost (call_loss), when the callee is down (after the delay: connection
//    refused) or cut off (after the call's timeout). The callee's core
//    answers at once, as the edge does.
//  - Bytes: a fetch attempt takes the table (header + tail) and then one
//    chunk at a time, each after a random per-link chunk time, from its
//    source's verified prefix (the CCM holds every part). A source that is
//    down ends the attempt at once (refused), a cut-off one after
//    idle_timeout, one that does not hold the part (404) at once; a source
//    that holds no more chunks yet is waited for up to idle_timeout. What a
//    relay holds is on its disk: it survives a crash.
//  - Children: cm-apply takes 1-30 ms and fails with apply_fail (exit 5); it
//    must only ever be given a complete file. cm-mcast send runs until every
//    receiver it names has its file or is down (or its limit); cm-mcast recv
//    gets the file once a sender of that serial in its site holds it whole,
//    unless the multicast fails for it (mcast_fail: exit 1 after its idle
//    timeout), and gives up after its idle timeout with no sender.
//  - Faults until `faults_until`: relay crashes (some come back after a
//    random down time with a fresh core and their disk), cut-offs of a relay
//    from everyone for a while, a CCM crash (the job is rerun by a fresh
//    JobCore, as an operator reruns the command).
// Invariants, checked after every step (Check): one final verdict per server
// per part in each run; a server recorded staged (committed) has applied
// that part (that commit) successfully; cm-apply only runs on complete
// files; orders (/v1/fetch) go only to servers of the job and /v1/expect only
// inside the caller's site; a replaced leader never closes its site; the
// final report lists every server once; after the faults stop, the job ends
// within `bound`.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "push/job_core.h"
#include "push/relay_core.h"

namespace cm::push::whole {

using proto::kMillis;
using proto::kSeconds;

struct PushSimParams {
  int sites = 2;
  int servers = 3;       // per site
  int parts = 1;         // stage parts, then the commit
  int chunks = 6;        // per stage part
  uint64_t chunk = 65536;
  bool commit = true;
  bool pipeline = true;
  size_t star_max = 3;
  bool groups = true;    // sites have a multicast group
  Micros call_min = 200, call_max = 5 * kMillis;  // one way
  double call_loss = 0;
  Micros chunk_min = 2 * kMillis, chunk_max = 20 * kMillis;  // per chunk on a link
  Micros idle_timeout = 10 * kSeconds;
  double apply_fail = 0;
  double mcast_fail = 0;
  int crashes = 0;             // relay crashes
  double restart = 0.5;        // chance a crashed relay comes back
  Micros down_min = 100 * kMillis, down_max = 20 * kSeconds;
  int cutoffs = 0;             // a relay cut off from everyone for cut_min..cut_max
  Micros cut_min = 1 * kSeconds, cut_max = 20 * kSeconds;
  bool ccm_crash = false;      // the CCM dies once and the job is rerun
  Micros faults_until = 30 * kSeconds;  // faults happen in [0, faults_until)
  Micros bound = 200 * kSeconds;        // the job ends by faults_until + bound
  Micros member_wait = 30 * kSeconds;   // relay option (the default 300 s stretches the bound)
  Micros limit = 2 * 3600 * kSeconds;   // virtual time at which the run gives up
};

// Draws a run's parameters from a seed: mostly small beds, some mid-size,
// one in a hundred at full scale (50 sites x 20 servers).
PushSimParams DrawParams(uint64_t seed);

struct PushSimResult {
  bool ok = true;
  std::string why;          // the first violated invariant
  uint64_t steps = 0;
  Micros end = 0;           // when the last run finished
  size_t servers = 0, succeeded = 0;
  int runs = 0;             // JobCore runs (2 after a CCM crash)
};

class PushSim {
 public:
  PushSim(uint64_t seed, PushSimParams p);
  ~PushSim();
  PushSimResult Run();
  void set_trace(bool on) { trace_ = on; }

 private:
  struct Spool {
    bool table = false;
    int verified = 0;  // chunks
    bool complete = false;
  };
  struct Attempt {
    uint64_t attempt = 0;
    int source = -1;  // node index; -1 = the CCM
    Micros waiting_since = -1;
  };
  struct Child {
    StartChild spec;
    bool done = false;   // its end was reported (or is on its way: cancelled)
    Micros fail_at = 0;  // kMcastRecv: the multicast failed for it; ends then
  };
  struct Relay {
    std::string name, site, url;
    int site_index = 0;
    std::unique_ptr<RelayCore> core;
    bool alive = true;
    uint64_t life = 0;                   // bumps at every crash: stale events are dropped
    Micros cut_until = 0;                // cut off from everyone until then
    std::map<uint64_t, Spool> spool;     // survives crashes
    std::set<uint64_t> introduced;       // serials this life's core was told about
    std::map<uint64_t, Attempt> fetches; // serial -> running attempt
    std::map<ChildId, Child> children;
    std::map<uint64_t, bool> applied_stage, applied_commit;  // serial -> applied OK (survives)
    uint64_t timer_gen = 0;
  };
  struct Ev {
    Micros t;
    uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Ev& o) const { return t != o.t ? t > o.t : seq > o.seq; }
  };

  // Scheduling and time.
  void At(Micros t, std::function<void()> fn);
  Micros Rand(Micros lo, Micros hi);
  bool Chance(double p);
  // Nodes.
  int NodeOf(const std::string& url) const;  // -1 = the CCM, -2 = unknown
  bool Reachable(int node) const;            // up and not cut off (the CCM: up)
  bool Cut(int node) const;
  void StartRelay(int i);
  void CrashRelay(int i);
  // The CCM.
  void StartJob();
  void RunJob(const JobActions& a);
  // Relays.
  void RunRelay(int i, const RelayActions& a);
  void Introduce(int i, uint64_t serial);
  void FetchStep(int i, uint64_t serial, uint64_t attempt, uint64_t life);
  void EndAttempt(int i, uint64_t serial, const std::string& error);
  void StartChildAt(int i, const StartChild& c);
  void ChildStep(int i, ChildId id, uint64_t life, Micros started);
  void FinishChild(int i, ChildId id, int code, const std::string& err, bool cancelled, bool file_complete);
  FetchUpdate UpdateOf(int i, uint64_t serial, uint64_t attempt, bool ended, const std::string& error) const;
  // Calls.
  void SendCall(int from, const Call& c);  // from: -1 = the CCM
  Reply Deliver(int to, const Call& c);
  void CallDone(int from, uint64_t life, const CallResult& r);
  // Invariants.
  void Fail(const std::string& why);
  bool Storm(int node);  // a timer fired more than 1000 times at one instant
  std::map<int, std::pair<Micros, int>> storms_;
  void CheckCall(int from, const Call& c);
  uint64_t PartSerial(size_t k) const { return 100 + k; }
  uint64_t CommitSerial() const { return 900; }
  int Chunks(uint64_t serial) const { return serial == CommitSerial() ? 0 : p_.chunks; }

  uint64_t seed_;
  PushSimParams p_;
  std::mt19937_64 rng_;
  bool trace_ = false;
  Micros now_ = 0;
  uint64_t seq_ = 0, steps_ = 0;
  std::priority_queue<Ev, std::vector<Ev>, std::greater<Ev>> q_;
  JobPlan plan_;
  std::vector<Relay> relays_;
  std::map<std::string, int> by_url_;
  std::map<std::string, int> by_name_;
  std::map<std::pair<int, int>, Micros> link_;  // (source, relay) -> chunk time
  // The CCM.
  std::unique_ptr<JobCore> job_;
  bool ccm_alive_ = true;
  uint64_t ccm_life_ = 0, ccm_timer_gen_ = 0;
  int runs_ = 0;
  bool finished_ = false;
  Micros finished_at_ = 0;
  std::vector<FinalVerdict> verdicts_;
  std::set<std::pair<std::string, uint64_t>> final_records_;      // this run: (server, serial)
  std::map<std::string, std::set<std::string>> replaced_;          // this run: site -> replaced leaders (this part)
  uint64_t part_serial_ = 0;                                       // the part the last kPhase named
  bool commit_asked_ = false;
  PushSimResult res_;
};

}  // namespace cm::push::whole
