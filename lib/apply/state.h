// ROOT/.cm/state: what this content root has applied and what it serves.
// Written atomically (temporary file, fsync, rename, fsync of .cm), so it is
// always wholly old or wholly new. Text (kv_text.h), magic "cm-apply-state 1":
//
//   last_serial 43
//   current s000000000042-job7        release ROOT/current points at ("" = none)
//   previous s000000000040-job6
//   staged_job job8                   the job being staged (absent = none)
//   staged_dir job8.p1                its directory under .cm/stage/
//   staged_type publish
//   staged_parts 1                    parts 1..N applied
//   staged_complete 1                 the part flagged last has been applied
//   staged_serial 43                  serial of the newest part (names the release)
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

struct State {
  static constexpr size_t kMaxApplied = 256;

  uint64_t last_serial = 0;
  std::string current, previous;
  std::string staged_job, staged_dir, staged_type;
  uint32_t staged_parts = 0;
  bool staged_complete = false;
  uint64_t staged_serial = 0;
  std::deque<AppliedId> applied;

  bool HasStage() const { return !staged_job.empty(); }
  void ClearStage();
  // Records an applied assignment (idempotent) and raises last_serial.
  void Record(const AppliedId& a);
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
