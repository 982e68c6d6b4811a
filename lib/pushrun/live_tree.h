// The relay's view of its live tree for the CCM's start probe
// (GET /v1/status?nonce=..&live=1): `cm-apply verify-live --json` on the
// relay's root (quick: the stat cache; unchanged files are not read). One run
// at a time, its answer shared for kFresh by every caller while cm-apply's
// state (ROOT/.cm/state, ROOT/current) is unchanged, so callers on the
// network can make the relay walk its tree at most once per kFresh, and an
// answer never outlives an apply.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

#include "push/messages.h"

namespace cm::pushrun {

class LiveTreeProbe {
 public:
  static constexpr std::chrono::seconds kFresh{2};
  LiveTreeProbe(std::string cm_apply, std::string root) : cm_apply_(std::move(cm_apply)), root_(std::move(root)) {}
  // nullopt: no root, or cm-apply could not tell (logged at -v).
  std::optional<push::LiveTree> Get();

 private:
  std::string cm_apply_, root_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point at_{};
  std::string fingerprint_;  // of cm-apply's state when last_ was taken
  std::optional<push::LiveTree> last_;
  bool have_ = false;
};

// Parses `cm-apply verify-live --json` output and exit code into a LiveTree
// (exit 3 = no live release: the empty tree).
std::optional<push::LiveTree> ParseVerifyLive(int exit_code, const std::string& out, std::string* error);

}  // namespace cm::pushrun
