// A site leader's report for one assignment: which of its members staged (or
// committed) it and which failed, and why. SiteCollector is the leader's pure
// collector: member results arrive in any order (duplicates and strangers are
// ignored) until every member has answered or the deadline passes; members
// still silent then are reported failed, "no report". The report goes to the
// CCM as JSON (POST /v1/site-report, docs/protocol/push.md).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proto/core.h"
#include "util/status.h"

// In an inline namespace of its own: push/messages.h has the wire SiteReport
// (and its ParseSiteReport) in cm::push; this is the collector's older model.
namespace cm::push::inline site_collector {

using proto::Micros;

enum class SitePhase { kStage, kCommit };
enum class MemberState { kPending, kStaged, kCommitted, kFailed };
const char* SitePhaseName(SitePhase p);      // "stage", "commit"
const char* MemberStateName(MemberState s);  // "pending", "staged", "committed", "failed"

inline constexpr std::string_view kNoReport = "no report";

struct MemberResult {
  std::string name;
  MemberState state = MemberState::kPending;
  std::string reason;  // kFailed: why (one line)
  Micros at = 0;       // when the leader recorded it (collector clock; not in JSON)
  bool operator==(const MemberResult& o) const {
    return name == o.name && state == o.state && reason == o.reason;
  }
};

struct SiteReport {
  std::string site;
  std::string leader;
  std::string job;
  uint64_t serial = 0;
  SitePhase phase = SitePhase::kStage;
  bool complete = false;  // every member answered or the deadline passed
  std::vector<MemberResult> members;  // in the order the leader listed them

  size_t Count(MemberState s) const;
  // {"site":..,"leader":..,"job":..,"serial":N,"phase":"stage","complete":true,
  //  "staged":N,"committed":N,"failed":N,"pending":N,
  //  "members":[{"name":..,"state":"staged"},{"name":..,"state":"failed","reason":..}]}
  std::string ToJson() const;
};

// Reads ToJson's output (the counts are recomputed, not trusted). Errors:
// kCorrupt for malformed JSON, missing or mistyped fields, unknown states or
// phases, empty or duplicate member names.
Result<SiteReport> ParseSiteReport(std::string_view json);

class SiteCollector {
 public:
  enum class Accept { kRecorded, kDuplicate, kUnknownMember, kWrongPhase };

  // `header` gives site, leader, job, serial and phase (its members and
  // complete are ignored). Duplicate member names count once.
  SiteCollector(SiteReport header, const std::vector<std::string>& members, Micros deadline);

  // A member's result: kStaged or kFailed in the stage phase, kCommitted or
  // kFailed in the commit phase. The first result per member counts; results
  // after Ready() are still recorded while the member is silent.
  Accept OnResult(Micros now, std::string_view member, MemberState state, std::string reason = {});

  // Every member answered, or now >= deadline.
  bool Ready(Micros now) const;
  // The deadline while someone is silent, proto::kNever once all answered.
  Micros NextWake() const;
  Micros deadline() const { return deadline_; }
  void ExtendDeadline(Micros deadline) { deadline_ = std::max(deadline_, deadline); }
  // Members that have not answered yet, in the listed order (to query them).
  std::vector<std::string> Missing() const;
  size_t answered() const { return answered_; }
  size_t members() const { return report_.members.size(); }

  // The report as of `now`: before Ready, silent members are kPending; once
  // Ready, they are kFailed with reason kNoReport and complete is true.
  SiteReport Report(Micros now) const;

 private:
  SiteReport report_;
  std::map<std::string, size_t, std::less<>> index_;
  size_t answered_ = 0;
  Micros deadline_;
};

}  // namespace cm::push::inline site_collector
