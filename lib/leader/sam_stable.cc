// The text form of SamStable (leader/sam_stable.h):
//   cm-sam-stable 1
//   delivered N | hash N | install_floor N | ckpt SEQ HASH | next_seq N | trim_floor N
//   seen|promised|led EPOCH ROUND ID
//   log SEQ ID
//   held ID TS SEQ FETCHED(0|1)
//   accepted SEQ ID EPOCH ROUND ID COMMITTED(0|1) HOLDER...
#include "leader/sam_stable.h"

#include <charconv>
#include <vector>

namespace cm::leader {

namespace {

constexpr std::string_view kHeader = "cm-sam-stable 1";

std::string B(const sam::Ballot& b) {
  return std::to_string(b.epoch) + " " + std::to_string(b.round) + " " + std::to_string(b.id);
}

std::vector<uint64_t> Numbers(std::string_view line, bool* ok) {
  std::vector<uint64_t> v;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ') {
      ++i;
      continue;
    }
    uint64_t x = 0;
    auto [p, ec] = std::from_chars(line.data() + i, line.data() + line.size(), x);
    if (ec != std::errc() || (p != line.data() + line.size() && *p != ' ')) {
      *ok = false;
      return v;
    }
    v.push_back(x);
    i = static_cast<size_t>(p - line.data());
  }
  return v;
}

}  // namespace

std::string EncodeSamStable(const SamStable& s) {
  std::string o(kHeader);
  o += "\n";
  auto kv = [&](const char* k, uint64_t v) { o += std::string(k) + " " + std::to_string(v) + "\n"; };
  kv("delivered", s.delivered);
  kv("hash", s.hash);
  kv("install_floor", s.install_floor);
  o += "ckpt " + std::to_string(s.ckpt_seq) + " " + std::to_string(s.ckpt_hash) + "\n";
  kv("next_seq", s.next_seq);
  kv("trim_floor", s.trim_floor);
  o += "seen " + B(s.seen) + "\npromised " + B(s.promised) + "\nled " + B(s.led) + "\n";
  for (const auto& [seq, id] : s.log) o += "log " + std::to_string(seq) + " " + std::to_string(id) + "\n";
  for (const auto& [id, h] : s.held)
    o += "held " + std::to_string(id) + " " + std::to_string(h.ts) + " " + std::to_string(h.seq) + " " +
         (h.fetched ? "1" : "0") + "\n";
  for (const auto& [seq, e] : s.accepted) {
    o += "accepted " + std::to_string(seq) + " " + std::to_string(e.id) + " " + B(e.ballot) + " " +
         (s.accepted_committed.count(seq) ? "1" : "0");
    for (uint64_t h : e.holders) o += " " + std::to_string(h);
    o += "\n";
  }
  return o;
}

Result<SamStable> DecodeSamStable(std::string_view text) {
  SamStable s;
  size_t pos = 0, n = 0;
  bool header = false;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) return Error(Code::kCorrupt, "SAM stable storage: truncated (no final newline)");
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++n;
    auto bad = [&] { return Error(Code::kCorrupt, "SAM stable storage: bad line " + std::to_string(n)); };
    if (!header) {
      if (line != kHeader) return Error(Code::kCorrupt, "SAM stable storage: not 'cm-sam-stable 1'");
      header = true;
      continue;
    }
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return bad();
    const std::string_view key = line.substr(0, sp);
    bool ok = true;
    const std::vector<uint64_t> v = Numbers(line.substr(sp + 1), &ok);
    if (!ok) return bad();
    auto ballot = [&](size_t at) { return sam::Ballot{v[at], v[at + 1], v[at + 2]}; };
    if (key == "delivered" && v.size() == 1) s.delivered = v[0];
    else if (key == "hash" && v.size() == 1) s.hash = v[0];
    else if (key == "install_floor" && v.size() == 1) s.install_floor = v[0];
    else if (key == "ckpt" && v.size() == 2) s.ckpt_seq = v[0], s.ckpt_hash = v[1];
    else if (key == "next_seq" && v.size() == 1) s.next_seq = v[0];
    else if (key == "trim_floor" && v.size() == 1) s.trim_floor = v[0];
    else if (key == "seen" && v.size() == 3) s.seen = ballot(0);
    else if (key == "promised" && v.size() == 3) s.promised = ballot(0);
    else if (key == "led" && v.size() == 3) s.led = ballot(0);
    else if (key == "log" && v.size() == 2) s.log[v[0]] = v[1];
    else if (key == "held" && v.size() == 4 && v[3] <= 1) s.held[v[0]] = SamStable::Held{v[1], v[2], v[3] == 1};
    else if (key == "accepted" && v.size() >= 6 && v[5] <= 1 && v.size() - 6 <= sam::kMaxHolders) {
      sam::Entry e{v[0], v[1], ballot(2), std::vector<uint64_t>(v.begin() + 6, v.end())};
      s.accepted[v[0]] = e;
      if (v[5] == 1) s.accepted_committed.insert(v[0]);
    } else {
      return bad();
    }
  }
  if (!header) return Error(Code::kCorrupt, "SAM stable storage: empty");
  return s;
}

}  // namespace cm::leader
