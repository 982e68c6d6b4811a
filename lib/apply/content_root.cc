#include "apply/content_root.h"

#include "apply/recovery.h"

namespace cm::apply {

Result<std::unique_ptr<ContentRoot>> ContentRoot::Open(const std::string& root, const RootOptions& opts) {
  std::unique_ptr<ContentRoot> r(new ContentRoot(Layout(root), opts));
  CM_RETURN_IF_ERROR(EnsureLayout(r->layout_));
  CM_ASSIGN_OR_RETURN(r->lock_, RootLock::Acquire(r->layout_.lock));
  CM_ASSIGN_OR_RETURN(r->state_, LoadState(r->layout_.state));
  if (opts.recover) CM_RETURN_IF_ERROR(Recover(*r));
  return r;
}

Status ContentRoot::SaveState() { return apply::SaveState(layout_.state, state_); }

}  // namespace cm::apply
