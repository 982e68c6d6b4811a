#include "mcastrun/events.h"

#include <cerrno>
#include <cstdlib>

#include "util/json.h"

namespace cm::mcastrun {
namespace {

constexpr unsigned kS = 1, kV = 2, kR = 4;  // roles a pattern applies to

struct Pattern {
  unsigned roles;
  const char* text;  // literal text with holes {key:u} (integer), {key:f} (decimal), {key:s} (text)
  const char* event;
};

// The cores' lines (lib/mcast/sender.cc, server.cc, receiver.cc), most
// specific first where two could match the same line.
constexpr Pattern kPatterns[] = {
    // sender (also inside a server)
    {kS, "start session {session:u} {file:s} size {size:u} rate {rate_bps:u}", "session_start"},
    {kS, "waiting for the first bytes of {file:s}", "waiting_for_data"},
    {kS, "backup: standing by for {primary:s}", "backup_standby"},
    {kS, "hash known", "hash_known"},
    {kS, "want from {receiver:s}: added to the session", "want_joined"},
    {kS, "tail parity: {frames:u} frames for a loss of {loss_percent:f}%", "tail_parity"},
    {kS, "tail: all data sent once", "data_sent"},
    {kS, "slow {receiver:s}: finishing it by unicast ({why:s})", "receiver_slow"},
    {kS, "slow {receiver:s}: finishing it by unicast", "receiver_slow"},
    {kS, "failed {receiver:s}: {reason:s}", "receiver_failed"},
    {kS, "complete {receiver:s}", "receiver_complete"},
    {kS, "outcome {outcome:s}", "outcome"},
    {kS, "rate {rate_bps:u}", "rate"},
    {kS, "unicast to {receiver:s}: no progress for {seconds:u} s, sending again", "unicast_stalled"},
    {kS, "alert: NACK from {receiver:s} while primary {primary:s} is alive", "primary_alive_nack"},
    {kS, "alert: receivers miss answers but primary {primary:s} is alive", "primary_alive_unanswered"},
    {kS, "takeover: primary {primary:s} is down", "takeover"},
    {kS, "probing primary {primary:s}", "probing_primary"},
    {kS, "handback: primary {primary:s} is back", "handback"},
    {kS, "primary finished", "primary_finished"},
    {kS | kV | kR, "finished", "finished"},
    {kS | kV | kR, "error: {message:s}", "error"},
    // server
    {kV, "serving {objects:u} objects", "serving"},
    {kV, "want {file:s} from {receiver:s}", "want_received"},
    {kV, "served {file:s}: {outcome:s}", "served"},
    // receiver
    {kR, "session {session:u} {file:s} size {size:u}", "session"},
    {kR, "refused session for {file:s} from {sender:s}: {reason:s}", "session_refused"},
    {kR, "resumed {file:s}: {bytes:u} bytes on disk", "resumed"},
    {kR, "sender does not have what we asked for", "not_available"},
    {kR, "want {file:s}", "want_sent"},
    {kR, "complete {file:s}", "file_complete"},
    {kR, "failed {file:s}: {reason:s}", "file_failed"},
    {kR, "failed {file:s}", "file_failed"},
};

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Matches `line` against the pattern from `p` on; appends the holes' values.
// Holes take as little as they can (then more on backtracking); a text hole
// is never empty.
bool Match(std::string_view p, std::string_view line, std::vector<EventField>* out) {
  if (p.empty()) return line.empty();
  if (p[0] != '{') {
    const size_t n = std::min(p.find('{'), p.size());
    if (line.substr(0, n) != p.substr(0, n)) return false;
    return Match(p.substr(n), line.substr(n), out);
  }
  const size_t close = p.find('}');
  const std::string_view hole = p.substr(1, close - 1);
  const std::string key(hole.substr(0, hole.size() - 2));
  const char type = hole.back();
  const std::string_view rest = p.substr(close + 1);
  for (size_t n = 1; n <= line.size(); ++n) {
    const std::string_view v = line.substr(0, n);
    EventField f{key, std::string(v)};
    if (type == 'u') {
      if (!AllDigits(v)) break;  // a longer prefix is no number either
      errno = 0;
      const uint64_t x = std::strtoull(std::string(v).c_str(), nullptr, 10);
      if (errno) break;
      f.value = x;
    } else if (type == 'f') {
      const std::string s(v);
      char* end = nullptr;
      const double x = std::strtod(s.c_str(), &end);
      if (s.find_first_not_of("0123456789.") != std::string::npos) break;
      if (end != s.c_str() + s.size()) continue;
      f.value = x;
    }
    out->push_back(std::move(f));
    if (Match(rest, line.substr(n), out)) return true;
    out->pop_back();
  }
  return false;
}

unsigned Bit(Role r) { return r == Role::kSender ? kS : r == Role::kServer ? (kS | kV) : kR; }

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kSender: return "sender";
    case Role::kServer: return "server";
    case Role::kReceiver: return "receiver";
  }
  return "?";
}

std::optional<Event> ParseEvent(std::string_view line, Role role) {
  // Server lines before the sender's: "want NAME from ID" is a server's.
  for (unsigned pass : {kV, kS | kR}) {
    for (const Pattern& p : kPatterns) {
      if (!(p.roles & Bit(role) & pass)) continue;
      Event e{p.event, {}};
      if (Match(p.text, line, &e.fields)) return e;
    }
  }
  return std::nullopt;
}

std::string EventRecord(std::string_view line, Role role, double t, bool alert) {
  JsonObject j;
  auto e = ParseEvent(line, role);
  j.Int("v", kSchemaVersion).Str("event", e ? e->name : "message").Str("role", RoleName(role)).Double("t", t);
  if (!e) j.Str("text", line);
  if (e)
    for (const EventField& f : e->fields) {
      if (auto* s = std::get_if<std::string>(&f.value)) j.Str(f.key, *s);
      else if (auto* u = std::get_if<uint64_t>(&f.value)) j.Uint(f.key, *u);
      else j.Double(f.key, std::get<double>(f.value));
    }
  if (alert) j.Bool("alert", true);
  return j.Build();
}

}  // namespace cm::mcastrun
