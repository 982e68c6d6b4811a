#include "apply/state.h"

#include <algorithm>

#include "apply/kv_text.h"
#include "util/file_util.h"

namespace cm::apply {
namespace {
constexpr char kMagic[] = "cm-apply-state";
constexpr int kVersion = 1;
}  // namespace

void State::ClearStage() {
  staged_job.clear();
  staged_dir.clear();
  staged_type.clear();
  staged_parts = 0;
  staged_complete = false;
  staged_serial = 0;
}

void State::Record(const AppliedId& a, SerialSpace space) {
  if (std::find(applied.begin(), applied.end(), a) == applied.end()) applied.push_back(a);
  while (applied.size() > kMaxApplied) applied.pop_front();
  uint64_t& last = space == SerialSpace::kStage ? last_stage_serial : last_switch_serial;
  last = std::max(last, a.serial);
}

const AppliedId* State::Find(uint64_t serial) const {
  for (const auto& a : applied)
    if (a.serial == serial) return &a;
  return nullptr;
}

std::string EncodeState(const State& s) {
  KvLines l;
  l.emplace_back("last_stage_serial", std::to_string(s.last_stage_serial));
  l.emplace_back("last_switch_serial", std::to_string(s.last_switch_serial));
  // For an older cm-apply reading this state (downgrade): it still refuses
  // everything up to the newest serial either space has seen.
  l.emplace_back("last_serial", std::to_string(s.LastSerialAny()));
  if (!s.current.empty()) l.emplace_back("current", s.current);
  if (!s.previous.empty()) l.emplace_back("previous", s.previous);
  if (s.HasStage()) {
    l.emplace_back("staged_job", s.staged_job);
    l.emplace_back("staged_dir", s.staged_dir);
    l.emplace_back("staged_type", s.staged_type);
    l.emplace_back("staged_parts", std::to_string(s.staged_parts));
    l.emplace_back("staged_complete", s.staged_complete ? "1" : "0");
    l.emplace_back("staged_serial", std::to_string(s.staged_serial));
  }
  if (!s.noop_job.empty()) l.emplace_back("noop_job", s.noop_job);
  for (const auto& a : s.applied) l.emplace_back("applied", std::to_string(a.serial) + " " + a.id_hex + " " + a.job);
  return EncodeKv(kMagic, kVersion, l);
}

Result<State> DecodeState(std::string_view text) {
  CM_ASSIGN_OR_RETURN(KvLines lines, DecodeKv(kMagic, kVersion, text));
  State s;
  uint64_t legacy_last = 0;
  bool spaces = false;
  for (const auto& [k, v] : lines) {
    auto bad = [&] { return Error(Code::kCorrupt, std::string(kMagic) + ": bad " + k + " line"); };
    uint64_t n = 0;
    if (k == "last_serial") {
      if (!ParseU64(v, &legacy_last)) return bad();
    } else if (k == "last_stage_serial") {
      if (!ParseU64(v, &s.last_stage_serial)) return bad();
      spaces = true;
    } else if (k == "last_switch_serial") {
      if (!ParseU64(v, &s.last_switch_serial)) return bad();
      spaces = true;
    } else if (k == "noop_job") {
      s.noop_job = v;
    } else if (k == "current") {
      s.current = v;
    } else if (k == "previous") {
      s.previous = v;
    } else if (k == "staged_job") {
      s.staged_job = v;
    } else if (k == "staged_dir") {
      s.staged_dir = v;
    } else if (k == "staged_type") {
      s.staged_type = v;
    } else if (k == "staged_parts") {
      if (!ParseU64(v, &n) || n > UINT32_MAX) return bad();
      s.staged_parts = static_cast<uint32_t>(n);
    } else if (k == "staged_complete") {
      if (v != "0" && v != "1") return bad();
      s.staged_complete = v == "1";
    } else if (k == "staged_serial") {
      if (!ParseU64(v, &s.staged_serial)) return bad();
    } else if (k == "applied") {
      size_t a = v.find(' '), b = a == std::string::npos ? a : v.find(' ', a + 1);
      if (b == std::string::npos) return bad();
      AppliedId id;
      if (!ParseU64(std::string_view(v).substr(0, a), &id.serial)) return bad();
      id.id_hex = v.substr(a + 1, b - a - 1);
      id.job = v.substr(b + 1);
      s.applied.push_back(std::move(id));
    }
    // Unknown keys are ignored so a newer cm-apply's state stays readable.
  }
  if (!spaces) s.last_stage_serial = s.last_switch_serial = legacy_last;  // migrated: both spaces
  if (s.HasStage() && (s.staged_dir.empty() || s.staged_dir.find('/') != std::string::npos))
    return Error(Code::kCorrupt, std::string(kMagic) + ": bad staged_dir");
  return s;
}

Result<State> LoadState(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) return State{};
    return text.status();
  }
  auto s = DecodeState(*text);
  if (!s.ok()) return Status(s.status().code(), path + ": " + s.status().message());
  return s;
}

Status SaveState(const std::string& path, const State& s) { return WriteFileAtomic(path, EncodeState(s), 0600); }

}  // namespace cm::apply
