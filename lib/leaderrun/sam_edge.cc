// cm-leader's SAM edge (leaderrun/sam_edge.h).
#include "leaderrun/sam_edge.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "http/client.h"
#include "leader/sam_stable.h"
#include "pack/assignment_format.h"
#include "util/file_util.h"
#include "util/json_value.h"
#include "util/log.h"
#include "util/subprocess.h"

namespace cm::leaderrun {

using proto::Micros;

namespace {

std::string IpOf(const proto::Address& a) {
  return std::to_string(a.ip >> 24) + "." + std::to_string((a.ip >> 16) & 255) + "." + std::to_string((a.ip >> 8) & 255) +
         "." + std::to_string(a.ip & 255);
}

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Serials of the complete assignment files directly in the spool.
std::vector<uint64_t> SpoolSerials(const std::string& spool) {
  std::vector<uint64_t> v;
  DIR* d = ::opendir(spool.c_str());
  if (!d) return v;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() < 5 || n.compare(n.size() - 4, 4, ".cma") != 0) continue;
    const std::string num = n.substr(0, n.size() - 4);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || num.size() > 19) continue;
    v.push_back(std::strtoull(num.c_str(), nullptr, 10));
  }
  ::closedir(d);
  return v;
}

struct Task {
  uint64_t seq = 0, id = 0;
  bool fetched = false;  // the core had it from a peer (or not at all: a checkpoint's window)
  std::vector<proto::Address> peers;
};

}  // namespace

struct SamEdge::Impl {
  SamEdgeOptions o;
  std::string stable_path, applied_path;
  uint64_t written_version = UINT64_MAX;
  std::set<uint64_t> told;  // serials handed to the core (OnData)
  Micros next_scan = 0;
  uint64_t queued_through = 0;  // numbers handed to the apply thread

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::deque<leader::DataOffer> fetch_q;
  std::set<uint64_t> fetching;
  std::vector<leader::DataOffer> fetched_done;
  std::deque<Task> apply_q;
  SamEdgeStatus st;
  std::thread fetch_thread, apply_thread;

  std::string SpoolPath(uint64_t id) const { return o.spool + "/" + std::to_string(id) + ".cma"; }
  // Present for a serial this edge fetched from a peer (not the relay's own).
  std::string Marker(uint64_t id) const { return o.state_dir + "/" + std::to_string(id) + ".fetched"; }
  std::string Url(const proto::Address& peer, const std::string& what, uint64_t id) const {
    return "http://" + IpOf(peer) + ":" + std::to_string(o.relay_port) + "/v1/" + what + "/" + std::to_string(id);
  }

  // GETs the serial's file from the peer's relay into the spool (a temp file
  // renamed into place). True when it is there now.
  bool FetchFrom(const proto::Address& peer, uint64_t id) {
    const std::string dest = SpoolPath(id);
    if (Exists(dest)) return true;
    const std::string tmp = o.state_dir + "/" + std::to_string(id) + ".fetch";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    http::FetchOptions fo;
    fo.connect_timeout = std::chrono::milliseconds(2000);
    fo.idle_timeout = std::chrono::milliseconds(10000);
    Status s = http::FetchRange(Url(peer, "content", id), 0, std::nullopt, [&](std::string_view b) -> Status {
      size_t off = 0;
      while (off < b.size()) {
        const ssize_t n = ::write(fd, b.data() + off, b.size() - off);
        if (n < 0) return ErrnoError(tmp, errno);
        off += static_cast<size_t>(n);
      }
      return Status::Ok();
    }, fo);
    if (s.ok() && ::fsync(fd) != 0) s = ErrnoError(tmp, errno);
    ::close(fd);
    // The marker first: a restart must not take this file for one the relay received.
    if (s.ok()) s = WriteFileAtomic(Marker(id), "");
    if (!s.ok() || ::rename(tmp.c_str(), dest.c_str()) != 0) {
      ::unlink(tmp.c_str());
      log::Debug("sam: serial " + std::to_string(id) + " from " + IpOf(peer) + ": " + s.message());
      return false;
    }
    log::Info("sam: fetched serial " + std::to_string(id) + " from the relay at " + IpOf(peer));
    std::lock_guard<std::mutex> l(mu);
    ++st.fetched;
    return true;
  }

  void FetchLoop() {
    std::unique_lock<std::mutex> l(mu);
    while (!stop) {
      if (fetch_q.empty()) {
        cv.wait(l);
        continue;
      }
      leader::DataOffer f = fetch_q.front();
      fetch_q.pop_front();
      l.unlock();
      // Our relay receiving it now: its file will come (the core asks again if not).
      const bool ok = !RelayKnows(f.id) && FetchFrom(f.from, f.id);
      l.lock();
      fetching.erase(f.id);
      if (ok) fetched_done.push_back(f);
    }
  }

  // Whether this server's own relay is handling the serial (receiving it,
  // or done with it): then it is the relay's to apply and report, and the
  // edge neither fetches nor applies it. A relay that restarted has
  // forgotten the serials of its earlier run; one that does not answer
  // knows nothing.
  bool RelayKnows(uint64_t id) {
    if (o.self.ip == 0) return false;
    auto r = http::Call("GET", "http://" + IpOf(o.self) + ":" + std::to_string(o.relay_port) + "/v1/status", "",
                        std::chrono::milliseconds(1000));
    if (!r.ok() || r->status != 200) return false;
    auto v = ParseJson(r->body);
    if (!v.ok() || !v->is_object()) return false;
    for (const JsonValue& t : (*v)["transfers"].items())
      if (t.Uint("serial") == id && t.Str("state") != "failed") return true;
    return false;
  }

  // The names the CCM's order for `id` targeted in this site: ours, else a peer's.
  std::optional<std::string> Targets(uint64_t id, const std::vector<proto::Address>& peers) {
    if (auto t = ReadFileToString(SpoolPath(id) + ".to"); t.ok()) return *t;
    for (const proto::Address& p : peers) {
      auto r = http::Call("GET", Url(p, "targets", id), "", std::chrono::milliseconds(2000));
      if (r.ok() && r->status == 200) {
        (void)WriteFileAtomic(SpoolPath(id) + ".to", r->body);
        return r->body;
      }
    }
    return std::nullopt;
  }

  static bool IsCommit(const std::string& path) {
    std::string head(pack::kHeaderSize, '\0');
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const ssize_t n = ::pread(fd, head.data(), head.size(), 0);
    ::close(fd);
    pack::Header h;
    return n == static_cast<ssize_t>(head.size()) && pack::DecodeHeader(head, &h).ok() && h.type == pack::Type::kCommit;
  }

  static bool Listed(const std::string& names, const std::string& name) {
    size_t b = 0;
    while (b < names.size()) {
      size_t e = names.find('\n', b);
      if (e == std::string::npos) e = names.size();
      if (names.compare(b, e - b, name) == 0) return true;
      b = e + 1;
    }
    return false;
  }

  // One delivered number. Returns the outcome line.
  std::string Apply(const Task& t) {
    const std::string serial = "serial " + std::to_string(t.id);
    if (t.id == 0) return "no-op";
    const std::string relays = serial + ": received by this server's relay (its to apply and report)";
    if (!t.fetched || (Exists(SpoolPath(t.id)) && !Exists(Marker(t.id)))) return relays;
    if (o.root.empty()) return serial + ": no content root (order only)";
    if (RelayKnows(t.id)) return relays;
    // The data: here (the repair fetched it), else from any peer.
    bool have = Exists(SpoolPath(t.id));
    for (size_t i = 0; !have && i < t.peers.size(); ++i) have = FetchFrom(t.peers[i], t.id);
    if (!have) return serial + ": no peer holds it any more (the CCM's convergence brings this server up to date)";
    // A commit switches to a job staged here (cm-apply refuses it otherwise):
    // its order went only to the servers that had staged, so its targets
    // do not name one that staged the job through this repair.
    const bool commit = IsCommit(SpoolPath(t.id));
    if (!commit) {
      auto targets = Targets(t.id, t.peers);
      if (!targets) return serial + ": skipped, no peer knows whom its order targeted";
      if (!o.name.empty() && !Listed(*targets, o.name)) return serial + ": skipped, its order did not target " + o.name;
    }
    std::vector<std::string> argv{o.cm_apply, SpoolPath(t.id), "--root", o.root, "-q", "--json"};
    if (!o.pub_key.empty()) argv.insert(argv.end(), {"--pub-key", o.pub_key});
    for (int attempt = 0;; ++attempt) {
      ProcessOptions po;
      po.timeout = std::chrono::minutes(30);
      auto r = RunProcess(argv, po);
      if (!r.ok()) return serial + ": cm-apply: " + r.status().message();
      if (r->exit_code == 7 && attempt < 600) {  // another cm-apply holds the root: wait for it
        std::unique_lock<std::mutex> l(mu);
        cv.wait_for(l, std::chrono::milliseconds(500), [&] { return stop; });
        if (stop) return serial + ": stopped";
        continue;
      }
      if (r->exit_code == 0) {
        std::lock_guard<std::mutex> l(mu);
        ++st.repaired;
        return serial + ": applied (repaired from a peer)";
      }
      if (commit && r->exit_code == 3) return serial + ": skipped, a commit of a job not staged here";
      if (r->exit_code == 4 || r->exit_code == 5) ::unlink(SpoolPath(t.id).c_str());  // not the CCM's: never served on
      return serial + ": cm-apply exit " + std::to_string(r->exit_code) + ": " + LastLine(r->err);
    }
  }

  void ApplyLoop() {
    std::unique_lock<std::mutex> l(mu);
    while (!stop) {
      if (apply_q.empty()) {
        cv.wait(l);
        continue;
      }
      Task t = apply_q.front();
      l.unlock();
      const std::string outcome = Apply(t);
      l.lock();
      if (stop) break;  // not done: a restart does it again (cm-apply is idempotent)
      l.unlock();
      // A repair that changed this server, or failed, is the operator's to
      // know; a number that was not for this server is routine.
      if (t.id != 0 && t.fetched) {
        const std::string line = "sam: number " + std::to_string(t.seq) + ": " + outcome;
        if (outcome.find(": skipped, ") != std::string::npos) log::Info(line);
        else log::Warn(line);
      }
      (void)WriteFileAtomic(applied_path, std::to_string(t.seq) + "\n");
      l.lock();
      if (!apply_q.empty() && apply_q.front().seq == t.seq) apply_q.pop_front();
      st.applied = t.seq;
      st.last = outcome;
    }
  }
};

SamEdge::SamEdge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SamEdge::~SamEdge() {
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->fetch_thread.joinable()) impl_->fetch_thread.join();
  if (impl_->apply_thread.joinable()) impl_->apply_thread.join();
}

Result<std::unique_ptr<SamEdge>> SamEdge::Open(const SamEdgeOptions& o) {
  auto impl = std::make_unique<Impl>();
  impl->o = o;
  if (impl->o.state_dir.empty()) impl->o.state_dir = o.spool + "/.sam";
  if (::mkdir(o.spool.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError(o.spool, errno);
  if (::mkdir(impl->o.state_dir.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError(impl->o.state_dir, errno);
  impl->stable_path = impl->o.state_dir + "/stable";
  impl->applied_path = impl->o.state_dir + "/applied";
  std::unique_ptr<SamEdge> e(new SamEdge(std::move(impl)));
  if (auto text = ReadFileToString(e->impl_->stable_path); text.ok()) {
    auto s = leader::DecodeSamStable(*text);
    if (!s.ok()) return Error(s.status().code(), e->impl_->stable_path + ": " + s.status().message());
    e->loaded_ = *s;
  }
  if (auto a = ReadFileToString(e->impl_->applied_path); a.ok()) e->impl_->st.applied = std::strtoull(a->c_str(), nullptr, 10);
  // Numbers the core delivered before a restart but this edge had not done.
  e->impl_->queued_through = e->impl_->st.applied;
  for (const auto& [id, h] : e->loaded_.held) e->impl_->told.insert(id);
  Impl* p = e->impl_.get();
  p->fetch_thread = std::thread([p] { p->FetchLoop(); });
  p->apply_thread = std::thread([p] { p->ApplyLoop(); });
  return e;
}

Status SamEdge::Persist(const leader::Sam& sam) {
  if (sam.stable_version() == impl_->written_version) return Status::Ok();
  const Status s = WriteFileAtomic(impl_->stable_path, leader::EncodeSamStable(sam.stable()), 0600);
  if (s.ok()) impl_->written_version = sam.stable_version();
  return s;
}

void SamEdge::Scan(Micros now, leader::SegmentCore* core) {
  if (now < impl_->next_scan || !core->sam()) return;
  impl_->next_scan = now + 500 * proto::kMillis;
  for (uint64_t id : SpoolSerials(impl_->o.spool)) {
    if (impl_->told.count(id)) continue;
    {
      std::lock_guard<std::mutex> l(impl_->mu);
      if (impl_->fetching.count(id)) continue;  // the fetch thread is placing it
    }
    impl_->told.insert(id);
    if (core->sam()->stable().held.count(id) || Exists(impl_->Marker(id))) continue;
    core->OnData(id, core->sam()->known_committed());
  }
  // Data below the site's checkpoint: what this edge fetched goes (the
  // relay's own files go by its retention, spool_keep).
  for (uint64_t id : core->sam()->TakeDroppable()) {
    if (!Exists(impl_->Marker(id))) continue;
    ::unlink(impl_->SpoolPath(id).c_str());
    ::unlink((impl_->SpoolPath(id) + ".to").c_str());
    ::unlink(impl_->Marker(id).c_str());
  }
}

void SamEdge::Offer(const std::vector<leader::DataOffer>& offers) {
  if (offers.empty()) return;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    for (const leader::DataOffer& f : offers)
      if (impl_->fetching.insert(f.id).second) impl_->fetch_q.push_back(f);
  }
  impl_->cv.notify_all();
}

void SamEdge::Deliver(const leader::Sam& sam) {
  const leader::SamStable& s = sam.stable();
  if (s.delivered <= impl_->queued_through) return;
  std::vector<proto::Address> peers;
  for (const auto& [id, a] : sam.peers())
    if (id != 0 && a.ip != 0) peers.push_back(a);
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    for (uint64_t n = impl_->queued_through + 1; n <= s.delivered; ++n) {
      Task t;
      t.seq = n;
      auto it = s.log.find(n);
      if (it == s.log.end()) continue;  // below an installed checkpoint's window: unknown here
      t.id = it->second;
      auto h = s.held.find(t.id);
      t.fetched = h == s.held.end() || h->second.fetched;
      t.peers = peers;
      impl_->apply_q.push_back(t);
    }
    impl_->queued_through = s.delivered;
  }
  impl_->cv.notify_all();
}

std::vector<leader::DataOffer> SamEdge::TakeFetched() {
  std::lock_guard<std::mutex> l(impl_->mu);
  std::vector<leader::DataOffer> v;
  v.swap(impl_->fetched_done);
  return v;
}

SamEdgeStatus SamEdge::status() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->st;
}

}  // namespace cm::leaderrun
