// ROOT/.cm/state: what this content root has applied and what it serves.
// Written atomically (temporary file, fsync, rename, fsync of .cm), so it is
// always wholly old or wholly new. Text (kv_text.h), magic "cm-apply-state 1":
//
//   last_stage_serial 43              newest serial of a staging assignment applied
//   last_switch_serial 41             newest serial of a commit/rollback assignment applied
//   last_serial 43                    the larger of the two, for older cm-apply versions
//   current s000000000042-job7        release ROOT/current points at ("" = none)
//   previous s000000000040-job6
//   staged_job job8                   the job being staged (absent = none)
//   staged_dir job8.p1                its directory under .cm/stage/
//   staged_type publish
//   staged_parts 1                    parts 1..N applied
//   staged_complete 1                 the part flagged last has been applied
//   staged_serial 43                  serial of the newest part (names the release)
//   noop_job job9                     the last job found to change nothing (no stage; its
//                                     commit is a no-op that keeps current)
//   applied 43 <assignment id hex> job8      newest last, the last kMaxApplied kept
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "util/status.h"

namespace cm::apply {

// One applied assignment. id = H(header[0..256) || trailer[0..40)): covers
// the header, the data hash and the command sequence.
struct AppliedId {
  uint64_t serial = 0;
  std::string id_hex;
  std::string job;
  bool operator==(const AppliedId&) const = default;
};

// Serials are ordered in two spaces (man cm-apply(1), SERIALS): assignments
// that stage (every type but commit and rollback) among themselves, and those
// that switch ROOT/current (commit, rollback) among themselves. A job packed
// before another job's commit (a smaller serial) can then still be staged and
// committed after it. Serials come from one allocator, so they stay unique
// across both spaces, and `applied` catches a replay in either.
enum class SerialSpace { kStage, kSwitch };

struct State {
  static constexpr size_t kMaxApplied = 256;

  // A state written by a version without spaces has only `last_serial`:
  // it becomes both.
  uint64_t last_stage_serial = 0;
  uint64_t last_switch_serial = 0;
  std::string current, previous;
  std::string staged_job, staged_dir, staged_type;
  uint32_t staged_parts = 0;
  bool staged_complete = false;
  uint64_t staged_serial = 0;
  std::string noop_job;
  std::deque<AppliedId> applied;

  bool HasStage() const { return !staged_job.empty(); }
  void ClearStage();
  uint64_t LastSerial(SerialSpace space) const {
    return space == SerialSpace::kStage ? last_stage_serial : last_switch_serial;
  }
  // The larger of the two (what `last_serial` meant before the spaces).
  uint64_t LastSerialAny() const { return last_stage_serial > last_switch_serial ? last_stage_serial : last_switch_serial; }
  // Records an applied assignment (idempotent) and raises the last serial of
  // its space.
  void Record(const AppliedId& a, SerialSpace space);
  // The record with this serial, or nullptr.
  const AppliedId* Find(uint64_t serial) const;
  bool operator==(const State&) const = default;
};

std::string EncodeState(const State& s);
Result<State> DecodeState(std::string_view text);
// A missing file is a fresh State.
Result<State> LoadState(const std::string& path);
Status SaveState(const std::string& path, const State& s);

}  // namespace cm::apply
