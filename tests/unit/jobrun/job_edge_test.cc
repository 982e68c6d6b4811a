// Job mode's edge on loopback: a base and nine nodes in three sites, each
// with its own HTTP server, the real cores deciding who fetches from whom.
// The log grows while it spreads; every node must end with the base's bytes.
#include "jobrun/job_edge.h"

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "http/server.h"
#include "jobrun/record_log.h"
#include "unit/push/job_chunk_fixture.h"
#include "support/test_util.h"
#include "push/auth.h"
#include "util/json.h"

namespace cm::jobrun {
namespace {

using namespace std::chrono_literals;

struct Host {
  std::unique_ptr<http::Server> server;
  std::unique_ptr<JobEdge> edge;
  std::shared_ptr<std::atomic<JobEdge*>> target = std::make_shared<std::atomic<JobEdge*>>(nullptr);
  std::string url, dir, name;
};

const pack::SigningKey& BaseKey() {
  static const pack::SigningKey k = push::testing::SeededKey(40);
  return k;
}

void StartHost(Host* h, bool base, const std::string& name, const std::string& dir, uint16_t port = 0,
               const pack::PublicKey* key = nullptr, const std::function<void(JobEdgeOptions*)>& tweak = nullptr) {
  auto target = h->target;
  http::ServerOptions so;
  so.listen = "127.0.0.1:" + std::to_string(port);
  auto server = http::Server::Start(so, [target](const http::Request& req) {
    JobEdge* e = target->load();
    if (!e) return http::Response::Json(503, "{}");
    return e->Handle(req);
  });
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  h->server = std::move(server).value();
  h->url = "http://127.0.0.1:" + std::to_string(h->server->port());
  h->dir = dir;
  h->name = name;
  JobEdgeOptions o;
  o.base = base;
  o.name = name;
  o.url = h->url;
  o.dir = dir;
  o.group_key = GroupKey{7, 7, 7};
  o.key = key ? *key : BaseKey().pub;
  if (base) o.sign_key = BaseKey();
  o.up_bps = 0;
  o.poll = 300ms;
  o.max_read = 256 << 10;
  o.node.report_interval = 100 * proto::kMillis;
  o.node.help_interval = 200 * proto::kMillis;
  o.base_opts.silent_after = 1 * proto::kSeconds;
  o.base_opts.orphan_grace = 1 * proto::kSeconds;
  o.base_opts.unheard_grace = 10 * proto::kSeconds;
  if (tweak) tweak(&o);
  auto edge = JobEdge::Start(o);
  ASSERT_TRUE(edge.ok()) << edge.status().ToString();
  h->edge = std::move(edge).value();
  h->target->store(h->edge.get());
}

void StopHost(Host* h) {
  h->target->store(nullptr);
  if (h->edge) h->edge->Stop();
  if (h->server) h->server->Stop();
}

using test::ReadFile;

// `count` nodes in sites of `per_site` (s0a, s0b, ... s1a, ...), each with
// its own server, and the job object `job` that names them.
push::JobObject StartNodes(const test::TempDir& tmp, const Host& base, const std::string& job, int per_site,
                           std::vector<Host>* nodes,
                           const std::function<void(const std::string&, JobEdgeOptions*)>& tweak = nullptr) {
  push::JobObject object{job, base.url, {}};
  for (size_t i = 0; i < nodes->size(); ++i) {
    int k = static_cast<int>(i);
    std::string name = "s" + std::to_string(k / per_site) + std::string(1, static_cast<char>('a' + k % per_site));
    std::function<void(JobEdgeOptions*)> t;
    if (tweak) t = [&tweak, name](JobEdgeOptions* o) { tweak(name, o); };
    StartHost(&(*nodes)[i], false, name, tmp.path() + "/" + name, 0, nullptr, t);
    object.servers.push_back({name, "site" + std::to_string(k / per_site), (*nodes)[i].url, 0});
  }
  return object;
}

// Waits up to `limit` for every node to hold the whole log of `job`.
bool WaitComplete(std::vector<Host>& nodes, const std::string& job, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool done = true;
    for (Host& n : nodes) done = done && n.edge->View(job).complete;
    if (done) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
}

TEST(JobEdge, AGrowingLogReachesEveryNodeOfThreeSites) {
  test::TempDir tmp;
  Host base;
  StartHost(&base, true, "", tmp.path() + "/base");
  std::vector<Host> nodes(9);
  push::JobObject object = StartNodes(tmp, base, "ci-1", 3, &nodes);
  ASSERT_TRUE(base.edge->OpenJob(object).ok());
  ASSERT_TRUE(base.edge->BeginItem(object.job, 1, "file", "data.bin").ok());
  std::mt19937 rng(5);
  std::string all;
  for (int piece = 0; piece < 16; ++piece) {
    std::string bytes(256 << 10, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    all += bytes;
    ASSERT_TRUE(base.edge->AddData("ci-1", 1, bytes).ok());
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(base.edge->EndItem("ci-1", 1).ok());
  ASSERT_TRUE(base.edge->Finish("ci-1").ok());
  const std::string log = ReadFile(base.dir + "/ci-1.log");
  EXPECT_GT(log.size(), all.size()) << "records: headers, the object, the ends";
  WaitComplete(nodes, "ci-1", 60s);
  for (Host& n : nodes) {
    JobEdgeView v = n.edge->View("ci-1");
    EXPECT_TRUE(v.complete) << n.name << " holds " << v.log_size << " of " << all.size();
    EXPECT_EQ(ReadFile(n.dir + "/ci-1.log"), log) << n.name;
    EXPECT_EQ(ReadFile(n.dir + "/ci-1/1-data.bin"), all) << n.name << ": the item as a file";
  }
  // The base heard every node complete (reports travel every 100 ms).
  auto until = std::chrono::steady_clock::now() + 5s;
  size_t heard = 0;
  while (std::chrono::steady_clock::now() < until) {
    heard = 0;
    for (const push::JobNodeState& s : base.edge->BaseView("ci-1")) heard += s.complete;
    if (heard == nodes.size()) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(heard, nodes.size());
  // Content crossed each site's uplink about once: the base fed only what its
  // cores chose (at least one node, not all nine).
  size_t fed_by_base = 0;
  for (const push::JobNodeState& s : base.edge->BaseView("ci-1")) fed_by_base += s.source == push::kBaseNode;
  EXPECT_GE(fed_by_base, 1u);
  EXPECT_LT(fed_by_base, nodes.size());
  for (Host& n : nodes) StopHost(&n);
  StopHost(&base);
}

// A node dies while the log grows and comes back later with its log: the
// nodes it fed get other sources, and the base finds it by its probes and
// has it fed again (it resumes where its log ends).
TEST(JobEdge, ANodeKilledMidJobIsRepairedWhenItReturns) {
  test::TempDir tmp;
  Host base;
  StartHost(&base, true, "", tmp.path() + "/base");
  std::vector<Host> nodes(6);
  push::JobObject object = StartNodes(tmp, base, "ci-2", 2, &nodes);
  ASSERT_TRUE(base.edge->OpenJob(object).ok());
  ASSERT_TRUE(base.edge->BeginItem(object.job, 1, "file", "data.bin").ok());
  std::mt19937 rng(9);
  std::string all;
  const int victim = 2;  // s1a: the entry of site 1, a source for others
  uint16_t victim_port = nodes[victim].server->port();
  uint64_t held_at_kill = 0;
  for (int piece = 0; piece < 20; ++piece) {
    std::string bytes(128 << 10, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    all += bytes;
    ASSERT_TRUE(base.edge->AddData("ci-2", 1, bytes).ok());
    if (piece == 5) {
      held_at_kill = nodes[victim].edge->View("ci-2").log_size;
      StopHost(&nodes[victim]);
    }
    if (piece == 15) StartHost(&nodes[victim], false, nodes[victim].name, nodes[victim].dir, victim_port);
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(base.edge->EndItem("ci-2", 1).ok());
  ASSERT_TRUE(base.edge->Finish("ci-2").ok());
  const std::string log = ReadFile(base.dir + "/ci-2.log");
  WaitComplete(nodes, "ci-2", 60s);
  for (Host& n : nodes) {
    EXPECT_TRUE(n.edge->View("ci-2").complete) << n.name;
    EXPECT_EQ(ReadFile(n.dir + "/ci-2.log"), log) << n.name;
    EXPECT_EQ(ReadFile(n.dir + "/ci-2/1-data.bin"), all) << n.name << ": written again from the log after the restart";
  }
  EXPECT_GT(held_at_kill, 0u) << "the victim held part of the log when it died";
  for (Host& n : nodes) StopHost(&n);
  StopHost(&base);
}

// A node whose key is not the base's refuses every record: nothing is kept
// or served onward, and the job does not complete there.
TEST(JobEdge, RecordsThatDoNotVerifyAreNeitherKeptNorServed) {
  test::TempDir tmp;
  Host base;
  StartHost(&base, true, "", tmp.path() + "/base");
  const pack::SigningKey other = push::testing::SeededKey(99);
  Host good, wrong;
  StartHost(&good, false, "good", tmp.path() + "/good");
  StartHost(&wrong, false, "wrong", tmp.path() + "/wrong", 0, &other.pub);
  push::JobObject object{"ci-3", base.url, {{"good", "site0", good.url, 0}, {"wrong", "site1", wrong.url, 0}}};
  ASSERT_TRUE(base.edge->OpenJob(object).ok());
  ASSERT_TRUE(base.edge->BeginItem(object.job, 1, "file", "data.bin").ok());
  ASSERT_TRUE(base.edge->AddData("ci-3", 1, std::string(300 << 10, 'x')).ok());
  ASSERT_TRUE(base.edge->EndItem("ci-3", 1).ok());
  ASSERT_TRUE(base.edge->Finish("ci-3").ok());
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!good.edge->View("ci-3").complete && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(good.edge->View("ci-3").complete);
  std::this_thread::sleep_for(500ms);
  JobEdgeView w = wrong.edge->View("ci-3");
  EXPECT_FALSE(w.complete);
  EXPECT_EQ(w.log_size, 0u) << "a record that does not verify is never kept";
  StopHost(&good);
  StopHost(&wrong);
  StopHost(&base);
}

// A job's commands: every node runs them in queue order once their records
// are in (stage with the assignments queued since the last stage), one at a
// time; a failing command fails the ones after it on that node only; the
// base hears every node's state of every entry.
TEST(JobEdge, CommandsRunInOrderOnEveryNodeAndTheBaseHearsTheirStates) {
  test::TempDir tmp;
  std::mutex mu;
  std::map<std::string, std::map<uint32_t, push::EntryReport>> heard;  // the base's
  std::map<std::string, std::vector<std::string>> ran;                 // per node: what it ran
  Host base;
  StartHost(&base, true, "", tmp.path() + "/base", 0, nullptr, [&](JobEdgeOptions* o) {
    o->on_entries = [&](const std::string& job, const std::string& node, const std::vector<push::EntryReport>& entries,
                        bool) {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_EQ(job, "ci-4");
      for (const push::EntryReport& e : entries) heard[node][e.entry] = e;
    };
  });
  std::vector<Host> nodes(4);
  push::JobObject object = StartNodes(tmp, base, "ci-4", 2, &nodes, [&](const std::string& name, JobEdgeOptions* o) {
    o->run_command = [&, name](const JobCommand& c, const std::atomic<bool>*) -> Status {
      std::string line = c.name + (c.arg.empty() ? "" : " " + c.arg);
      for (const JobItemRef& it : c.items) line += " [" + std::to_string(it.id) + " " + ReadFile(it.path) + "]";
      {
        std::lock_guard<std::mutex> lock(mu);
        ran[name].push_back(line);
      }
      std::this_thread::sleep_for(20ms);  // commands take time; the next waits for this one
      if (name == "s1b" && c.name == "commit") return Error(Code::kFailure, "cm-apply: no space");
      return Status::Ok();
    };
  });
  ASSERT_TRUE(base.edge->OpenJob(object).ok());
  auto item = [&](uint32_t id, const std::string& kind, const std::string& name, const std::string& bytes) {
    ASSERT_TRUE(base.edge->BeginItem("ci-4", id, kind, name).ok());
    ASSERT_TRUE(base.edge->AddData("ci-4", id, bytes).ok());
    ASSERT_TRUE(base.edge->EndItem("ci-4", id).ok());
  };
  auto command = [&](uint32_t id, const std::string& name, const std::string& arg) {
    ASSERT_TRUE(base.edge->BeginItem("ci-4", id, "command", name, arg).ok());
    ASSERT_TRUE(base.edge->EndItem("ci-4", id).ok());
  };
  item(1, "assignment", "a.cma", "first");
  item(2, "assignment", "b.cma", "second");
  command(3, "stage", "");
  item(4, "file", "notes.txt", "plain file");
  command(5, "hook", "warm");
  command(6, "commit", "");
  item(7, "assignment", "c.cma", "third");
  command(8, "stage", "");
  // The job stays open: commands run as their records arrive, not at its end.

  auto all_final = [&] {
    std::lock_guard<std::mutex> lock(mu);
    if (heard.size() != nodes.size()) return false;
    for (auto& [node, entries] : heard) {
      if (entries.size() != 8) return false;
      for (auto& [e, r] : entries) {
        if (r.state != push::EntryState::kDone && r.state != push::EntryState::kFailed) return false;
      }
    }
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!all_final() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(all_final());
  ASSERT_TRUE(base.edge->Finish("ci-4").ok());
  std::unique_lock<std::mutex> lock(mu);  // released before the hosts stop: the base's callback takes it
  const std::vector<std::string> want = {"stage [1 first] [2 second]", "hook warm", "commit", "stage [7 third]"};
  for (Host& n : nodes) {
    if (n.name == "s1b") {
      EXPECT_EQ(ran[n.name], std::vector<std::string>(want.begin(), want.begin() + 3)) << "nothing after the failure";
      EXPECT_EQ(heard[n.name][6].state, push::EntryState::kFailed);
      EXPECT_EQ(heard[n.name][6].error, "cm-apply: no space");
      EXPECT_EQ(heard[n.name][8].state, push::EntryState::kFailed);
      EXPECT_EQ(heard[n.name][8].error, "not run: command 6 failed");
      EXPECT_EQ(heard[n.name][7].state, push::EntryState::kDone) << "an item still arrives";
    } else {
      EXPECT_EQ(ran[n.name], want) << n.name;
      for (uint32_t e = 1; e <= 8; ++e) EXPECT_EQ(heard[n.name][e].state, push::EntryState::kDone) << n.name << " " << e;
    }
  }
  lock.unlock();
  for (Host& n : nodes) StopHost(&n);
  StopHost(&base);
}

// A live stream that goes quiet for longer than a fetch's idle limit (ten
// polls: 1 s here) is not a failed source: the nodes ask their sources, find
// them alive and holding no more, and wait on.
TEST(JobEdge, AQuietStreamIsNotAFailedSource) {
  test::TempDir tmp;
  Host base;
  StartHost(&base, true, "", tmp.path() + "/base");
  std::vector<Host> nodes(4);
  push::JobObject object =
      StartNodes(tmp, base, "ci-5", 2, &nodes, [](const std::string&, JobEdgeOptions* o) { o->poll = 100ms; });
  ASSERT_TRUE(base.edge->OpenJob(object).ok());
  ASSERT_TRUE(base.edge->BeginItem("ci-5", 1, "stream", "feed.log").ok());
  ASSERT_TRUE(base.edge->AddData("ci-5", 1, "first lines\n").ok());
  std::this_thread::sleep_for(3500ms);  // quiet: three times a fetch's idle limit
  ASSERT_TRUE(base.edge->AddData("ci-5", 1, "after the pause\n").ok());
  ASSERT_TRUE(base.edge->EndItem("ci-5", 1).ok());
  ASSERT_TRUE(base.edge->Finish("ci-5").ok());
  WaitComplete(nodes, "ci-5", 30s);
  for (Host& n : nodes) {
    JobEdgeView v = n.edge->View("ci-5");
    EXPECT_TRUE(v.complete) << n.name;
    EXPECT_EQ(v.source_failures, 0u) << n.name << ": a quiet source counted as failed";
    EXPECT_EQ(ReadFile(n.dir + "/ci-5/1-feed.log"), "first lines\nafter the pause\n") << n.name;
  }
  for (Host& n : nodes) StopHost(&n);
  StopHost(&base);
}

TEST(JobEdge, BadRequestsGetOneClearError) {
  test::TempDir tmp;
  Host base;
  StartHost(&base, true, "", tmp.path() + "/base");
  Host node;
  StartHost(&node, false, "n1", tmp.path() + "/n1");
  http::Request r;
  r.method = "POST";
  r.target = "/v1/job-offer";
  r.body = "{";
  EXPECT_EQ(node.edge->Handle(r).status, 401);  // nothing is parsed before the sender is known
  push::JobObject o{"ci-1", base.url, {{"other", "site0", "http://127.0.0.1:1", 0}}};
  push::JobOfferBody ob{"ci-1", push::JobOfferMsg{push::kBaseNode, {}, 0, 0, false, false}, base.url};
  r.body = "{\"object\":" + JsonEscape(push::Encode(o)) + ",\"offer\":" + JsonEscape(push::Encode(ob)) + "}";
  EXPECT_EQ(node.edge->Handle(r).status, 401);  // no CM-Auth
  auto stamp = [&](const std::string& from, const std::string& to, const std::string& path, const std::string& body) {
    push::auth::Stamp st;
    st.alg = push::auth::Alg::kMac;
    st.from = from;
    st.to = to;
    st.exp = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 60;
    static int serial = 0;
    char nonce[33];
    std::snprintf(nonce, sizeof nonce, "%032x", ++serial);
    st.nonce = nonce;
    push::auth::Mac(&st, push::auth::ReportKey(GroupKey{7, 7, 7}), "POST", path, body);
    r.headers[push::auth::kHeaderLower] = push::auth::Format(st);
  };
  std::string good = r.body;
  r.body = "{";
  stamp("ccm", "n1", "/v1/job-offer", r.body);
  EXPECT_EQ(node.edge->Handle(r).status, 400);
  r.body = good;
  stamp("ccm", "n1", "/v1/job-offer", r.body);
  EXPECT_EQ(node.edge->Handle(r).status, 403);  // not a server of that job
  push::JobObject o2{"ci-1", base.url, {{"n1", "site0", node.url, 0}, {"n2", "site0", "http://127.0.0.1:1", 0}}};
  push::JobOfferBody ob2{"ci-1", push::JobOfferMsg{1, {}, 0, 0, false, false}, "http://127.0.0.1:1"};
  r.body = "{\"object\":" + JsonEscape(push::Encode(o2)) + ",\"offer\":" + JsonEscape(push::Encode(ob2)) + "}";
  stamp("ccm", "n1", "/v1/job-offer", r.body);
  EXPECT_EQ(node.edge->Handle(r).status, 403);  // the base's stamp on an offer that says it is n2's
  stamp("n2", "n1", "/v1/job-offer", r.body + " ");
  EXPECT_EQ(node.edge->Handle(r).status, 401);  // the MAC covers the body
  r.headers.clear();
  r.method = "GET";
  r.target = "/v1/jobs/ci-1/log?from=0";
  EXPECT_EQ(node.edge->Handle(r).status, 404);
  r.target = "/v1/jobs/..%2f/log?from=0";
  EXPECT_EQ(node.edge->Handle(r).status, 400);
  r.method = "POST";
  r.target = "/v1/job-help";
  r.body = "{}";
  EXPECT_EQ(node.edge->Handle(r).status, 404);  // only the base answers
  EXPECT_EQ(base.edge->Handle(r).status, 401);  // no CM-Auth
  stamp("n1", "ccm", "/v1/job-help", r.body);
  EXPECT_EQ(base.edge->Handle(r).status, 400);
  EXPECT_EQ(base.edge->Handle(r).status, 409);  // the same stamp again: a replay
  StopHost(&node);
  StopHost(&base);
}

}  // namespace
}  // namespace cm::jobrun
