// An open content root: its layout, its lock, and its state in memory.
// Every operation that writes (apply, commit, rollback) works on one of these;
// opening one takes the lock and recovers from an interrupted earlier run
// (recovery.h) before anything else happens.
#pragma once

#include <memory>
#include <string>

#include "apply/hooks.h"
#include "apply/layout.h"
#include "apply/root_lock.h"
#include "apply/state.h"
#include "util/status.h"

namespace cm::apply {

constexpr int kDefaultReportKeep = 200;

struct RootOptions {
  int keep = 2;          // releases kept: current, previous, and keep-2 older (minimum 2)
  bool recover = true;   // run recovery after taking the lock (tests turn it off)
  int report_keep = kDefaultReportKeep;  // newest reports kept in .cm/reports (at least 1)
  HookConfig hooks;      // run around every commit and rollback (hooks.h); recovery runs none
};

class ContentRoot {
 public:
  // ROOT must exist (kNotFound). Errors: kBusy (locked), kIo (e.g. read-only
  // file system), kCorrupt (unreadable state or journal).
  static Result<std::unique_ptr<ContentRoot>> Open(const std::string& root, const RootOptions& opts);

  const Layout& layout() const { return layout_; }
  State& state() { return state_; }
  const State& state() const { return state_; }
  int keep() const { return opts_.keep < 2 ? 2 : opts_.keep; }
  const RootOptions& options() const { return opts_; }
  // Writes state() atomically.
  Status SaveState();

 private:
  ContentRoot(Layout l, RootOptions o) : layout_(std::move(l)), opts_(o) {}
  Layout layout_;
  RootOptions opts_;
  std::unique_ptr<RootLock> lock_;
  State state_;
};

}  // namespace cm::apply
