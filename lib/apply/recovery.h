// Recovery, run on every start under the lock before anything else:
//   - a journal left by an interrupted switch is carried out to its end (roll
//     forward: the new release is complete before its journal is written), or
//     dropped when its release cannot exist (then current was never touched);
//   - stage directories the state does not name (a part interrupted mid-way,
//     an abandoned job) are removed, as are leftover temporary files
//     (ROOT/.current.tmp, .cm/.state.tmp-*, spool files) and .cm/trash/.
// After Recover() ROOT/current, the state and the stage agree.
#pragma once

#include "apply/content_root.h"
#include "util/status.h"

namespace cm::apply {

Status Recover(ContentRoot& root);

}  // namespace cm::apply
