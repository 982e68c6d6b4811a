// ROOT/.cm/journal: the intent of a switch of ROOT/current, written (and
// fsynced) before the switch starts and removed after the state records it.
// Its presence at start-up means a switch was interrupted; recovery
// (switcher.h) then finishes it. Text (kv_text.h), magic "cm-apply-journal 1":
//
//   op commit|rollback
//   from s000000000041-a      release current pointed at ("" = none)
//   to s000000000042-b        release current is switched to
//   stage b.p1                commit only: stage directory moved to releases/<to>
//   applied 42 <id hex> b     the assignment that asked for it, if any
#pragma once

#include <optional>
#include <string>

#include "apply/layout.h"
#include "apply/state.h"
#include "util/status.h"

namespace cm::apply {

struct Journal {
  std::string op;  // "commit" or "rollback"
  std::string from, to, stage;
  std::optional<AppliedId> applied;
  bool operator==(const Journal&) const = default;
};

std::string EncodeJournal(const Journal& j);
Result<Journal> DecodeJournal(std::string_view text);

// Atomic write + fsync of .cm.
Status WriteJournal(const Layout& l, const Journal& j);
// nullopt when there is no journal.
Result<std::optional<Journal>> ReadJournal(const Layout& l);
Status RemoveJournal(const Layout& l);

}  // namespace cm::apply
