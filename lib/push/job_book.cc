#include "push/job_book.h"

#include <algorithm>

namespace cm::push {

const char* EntryKindName(EntryKind k) {
  switch (k) {
    case EntryKind::kFile: return "file";
    case EntryKind::kAssignment: return "assignment";
    case EntryKind::kStream: return "stream";
    case EntryKind::kCommand: return "command";
  }
  return "?";
}

std::optional<EntryKind> ParseEntryKind(std::string_view s) {
  for (EntryKind k : {EntryKind::kFile, EntryKind::kAssignment, EntryKind::kStream, EntryKind::kCommand}) {
    if (s == EntryKindName(k)) return k;
  }
  return std::nullopt;
}

const char* EntryStateName(EntryState s, EntryKind k) {
  switch (s) {
    case EntryState::kNew: return "new";
    case EntryState::kInProgress: return "in progress";
    case EntryState::kDone: return k == EntryKind::kCommand ? "completed" : "received";
    case EntryState::kFailed: return "failed";
  }
  return "?";
}

const char* CommandNameText(CommandName c) {
  switch (c) {
    case CommandName::kStage: return "stage";
    case CommandName::kCommit: return "commit";
    case CommandName::kRollback: return "rollback";
    case CommandName::kHook: return "hook";
  }
  return "?";
}

std::optional<CommandName> ParseCommandName(std::string_view s) {
  for (CommandName c : {CommandName::kStage, CommandName::kCommit, CommandName::kRollback, CommandName::kHook}) {
    if (s == CommandNameText(c)) return c;
  }
  return std::nullopt;
}

const char* JobNoticeKindName(JobNotice::Kind k) {
  switch (k) {
    case JobNotice::Kind::kReceived: return "received";
    case JobNotice::Kind::kExecuting: return "executing";
    case JobNotice::Kind::kCompleted: return "completed";
    case JobNotice::Kind::kFailed: return "failed";
    case JobNotice::Kind::kGivenUp: return "given-up";
    case JobNotice::Kind::kFinished: return "finished";
  }
  return "?";
}

namespace {

bool ClientNameOk(const std::string& c) {
  if (c.empty() || c.size() > 64) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
           ch == '_' || ch == '-';
  });
}

int Rank(EntryState s) {
  switch (s) {
    case EntryState::kNew: return 0;
    case EntryState::kInProgress: return 1;
    case EntryState::kDone: return 2;
    case EntryState::kFailed: return 3;
  }
  return 0;
}

}  // namespace

JobBook::JobBook(std::set<std::string> hooks) : hooks_(std::move(hooks)) {}

Result<std::string> JobBook::Open(Micros now, const std::string& client, std::vector<std::string> servers,
                                  JobOpenOptions opts, const std::string& want) {
  if (!ClientNameOk(client)) return Error(Code::kUsage, "client name must be 1-64 of [A-Za-z0-9._-]: '" + client + "'");
  if (servers.empty()) return Error(Code::kUsage, "a job needs at least one server");
  std::set<std::string> seen;
  for (const std::string& s : servers) {
    if (s.empty()) return Error(Code::kUsage, "empty server name");
    if (!seen.insert(s).second) return Error(Code::kUsage, "server listed twice: " + s);
  }
  std::string id = want.empty() ? client + "-" + std::to_string(++next_per_client_[client]) : want;
  if (jobs_.count(id)) return Error(Code::kUsage, "job " + id + " exists");
  Job j;
  j.opts = opts;
  j.view.id = id;
  j.view.client = client;
  j.view.servers = std::move(servers);
  j.view.deadline = now + opts.timeout;
  for (const std::string& s : j.view.servers) {
    j.view.states[s];
    j.last_progress[s] = now;
  }
  jobs_[id] = std::move(j);
  return id;
}

Result<JobBook::Job*> JobBook::Writable(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return Error(Code::kNotFound, "no job " + job);
  if (it->second.view.finished) return Error(Code::kUsage, "job " + job + " is over");
  if (it->second.view.ended) return Error(Code::kUsage, "job " + job + " was ended: nothing more can be queued");
  return &it->second;
}

Result<uint32_t> JobBook::AddItem(const std::string& job, EntryKind kind, const std::string& name) {
  if (kind == EntryKind::kCommand) return Error(Code::kUsage, "a command is queued with AddCommand");
  if (name.empty()) return Error(Code::kUsage, "an item needs a name");
  CM_ASSIGN_OR_RETURN(Job * j, Writable(job));
  JobEntry e;
  e.id = static_cast<uint32_t>(j->view.entries.size() + 1);
  e.kind = kind;
  e.name = name;
  e.closed = kind != EntryKind::kStream;
  j->view.entries.push_back(e);
  for (auto& [node, states] : j->view.states) states.push_back(EntryState::kNew);
  return e.id;
}

Result<uint32_t> JobBook::AddCommand(const std::string& job, CommandName command, const std::string& arg) {
  if (command == CommandName::kHook && !hooks_.count(arg)) {
    return Error(Code::kUsage, "no hook named '" + arg + "' is configured at the base");
  }
  CM_ASSIGN_OR_RETURN(Job * j, Writable(job));
  JobEntry e;
  e.id = static_cast<uint32_t>(j->view.entries.size() + 1);
  e.kind = EntryKind::kCommand;
  e.command = command;
  e.name = arg;
  j->view.entries.push_back(e);
  for (auto& [node, states] : j->view.states) states.push_back(EntryState::kNew);
  return e.id;
}

Status JobBook::CloseStream(const std::string& job, uint32_t entry) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return Error(Code::kNotFound, "no job " + job);
  auto& entries = it->second.view.entries;
  if (entry == 0 || entry > entries.size() || entries[entry - 1].kind != EntryKind::kStream) {
    return Error(Code::kUsage, "entry " + std::to_string(entry) + " of " + job + " is not a stream");
  }
  entries[entry - 1].closed = true;
  return Status::Ok();
}

Status JobBook::End(Micros now, const std::string& job, std::vector<JobNotice>* out) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return Error(Code::kNotFound, "no job " + job);
  it->second.view.ended = true;
  MaybeFinish(now, it->second, out);
  return Status::Ok();
}

bool JobBook::NodeDone(const Job& j, const std::string& node) const {
  if (j.view.given_up.count(node)) return true;
  const auto& states = j.view.states.at(node);
  return std::all_of(states.begin(), states.end(),
                     [](EntryState s) { return s == EntryState::kDone || s == EntryState::kFailed; });
}

void JobBook::OnReport(Micros now, const std::string& job, const std::string& node,
                       const std::vector<EntryReport>& entries, bool progress, std::vector<JobNotice>* out) {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || it->second.view.finished) return;
  Job& j = it->second;
  auto st = j.view.states.find(node);
  if (st == j.view.states.end() || j.view.given_up.count(node)) return;
  if (progress) j.last_progress[node] = now;
  for (const EntryReport& r : entries) {
    if (r.entry == 0 || r.entry > st->second.size()) continue;
    EntryState& cur = st->second[r.entry - 1];
    if (Rank(r.state) <= Rank(cur)) continue;
    const JobEntry& e = j.view.entries[r.entry - 1];
    EntryState before = cur;
    cur = r.state;
    JobNotice n;
    n.job = job;
    n.node = node;
    n.entry = r.entry;
    switch (r.state) {
      case EntryState::kInProgress:
        if (e.kind != EntryKind::kCommand) continue;  // an item in progress is no news
        n.kind = JobNotice::Kind::kExecuting;
        break;
      case EntryState::kDone:
        if (e.kind == EntryKind::kCommand && before == EntryState::kNew) {
          JobNotice x = n;
          x.kind = JobNotice::Kind::kExecuting;
          out->push_back(x);
        }
        n.kind = e.kind == EntryKind::kCommand ? JobNotice::Kind::kCompleted : JobNotice::Kind::kReceived;
        break;
      case EntryState::kFailed:
        n.kind = JobNotice::Kind::kFailed;
        n.error = r.error.empty() ? "failed" : r.error;
        break;
      case EntryState::kNew: continue;
    }
    out->push_back(n);
  }
  MaybeFinish(now, j, out);
}

void JobBook::MaybeFinish(Micros now, Job& j, std::vector<JobNotice>* out) {
  // A queue the client never ended closes at the deadline.
  if (j.view.finished || (!j.view.ended && now < j.view.deadline)) return;
  bool open_stream = std::any_of(j.view.entries.begin(), j.view.entries.end(), [](const JobEntry& e) { return !e.closed; });
  bool all = !open_stream;
  for (const std::string& s : j.view.servers) all = all && NodeDone(j, s);
  if (!all && now < j.view.deadline) return;
  if (!all) {
    // The deadline: nodes that moved lately wait longer, up to max_wait.
    Micros limit = j.view.deadline + j.opts.max_wait;
    bool waiting = false;
    for (const std::string& s : j.view.servers) {
      if (NodeDone(j, s)) continue;
      if (now < limit && now - j.last_progress[s] < j.opts.extend) {
        waiting = true;
        continue;
      }
      j.view.given_up.insert(s);
      JobNotice g;
      g.kind = JobNotice::Kind::kGivenUp;
      g.job = j.view.id;
      g.node = s;
      g.error = "did not finish by the deadline";
      out->push_back(g);
    }
    if (waiting && !open_stream) return;
    if (open_stream && now < limit) return;
  }
  j.view.finished = true;
  JobNotice f;
  f.kind = JobNotice::Kind::kFinished;
  f.job = j.view.id;
  f.total = j.view.servers.size();
  for (const std::string& s : j.view.servers) {
    const auto& states = j.view.states.at(s);
    bool ok = !j.view.given_up.count(s) &&
              std::all_of(states.begin(), states.end(), [](EntryState x) { return x == EntryState::kDone; });
    f.count += ok;
  }
  out->push_back(f);
}

void JobBook::OnTimer(Micros now, std::vector<JobNotice>* out) {
  for (auto& [id, j] : jobs_) MaybeFinish(now, j, out);
}

Micros JobBook::NextWake() const {
  Micros w = proto::kNever;
  for (const auto& [id, j] : jobs_) {
    if (j.view.finished) continue;
    w = std::min(w, j.view.deadline);
    for (const auto& [node, t] : j.last_progress) {
      if (t + j.opts.extend > j.view.deadline) w = std::min(w, std::max(j.view.deadline, t + j.opts.extend));
    }
  }
  return w;
}

std::optional<JobView> JobBook::View(const std::string& job) const {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return std::nullopt;
  return it->second.view;
}

std::vector<std::string> JobBook::Jobs() const {
  std::vector<std::string> ids;
  for (const auto& [id, j] : jobs_) ids.push_back(id);
  return ids;
}

bool JobBook::Forget(const std::string& job) {
  auto it = jobs_.find(job);
  if (it == jobs_.end() || !it->second.view.finished) return false;
  jobs_.erase(it);
  return true;
}

}  // namespace cm::push
