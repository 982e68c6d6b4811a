// Convergence (pure): before a push, which servers already run the tree the
// push applies to (its base), and how to bring every other one there. The
// CCM learns each server's live tree from its relay (messages.h LiveTree,
// what `cm-apply verify-live` says), and knows the releases its checkpoint
// store holds (by manifest hash). Per server:
//
//   live tree == want                         -> ready
//   no answer / no live tree reported         -> unknown (the push decides;
//                                                cm-apply refuses a wrong base)
//   recorded manifest known to the store      -> synchronize from it: the
//     (or an empty root)                         files that differ between it
//                                                and want, plus every path
//                                                the tree changed behind
//                                                cm-apply's back (content
//                                                unknown: always rewritten)
//   anything else (release the store no       -> replicate: the whole tree
//     longer holds, drift list truncated)
//
// Servers that need the same catch-up share one group (one assignment).
// docs/protocol/convergence.md.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "push/messages.h"

namespace cm::push {

struct ServerTree {
  std::string server;
  bool answered = false;
  std::optional<LiveTree> live;  // absent: not reported
};

enum class CatchUp { kSync, kReplicate };

struct CatchUpGroup {
  CatchUp kind = CatchUp::kSync;
  std::string from_manifest;               // kSync: hex of the tree to start from ("" = the empty tree)
  std::vector<std::string> unknown_paths;  // kSync: rewritten whatever they hold (sorted, unique)
  std::vector<std::string> servers;        // in input order
  uint64_t last_serial = 0;                // the newest serial any of them applied (LiveTree::last_serial)
  bool operator==(const CatchUpGroup&) const = default;
};

struct ConvergePlan {
  std::vector<std::string> ready;
  std::vector<std::string> unknown;
  std::vector<CatchUpGroup> groups;  // in order of their first server
  size_t CatchUpCount() const {
    size_t n = 0;
    for (const auto& g : groups) n += g.servers.size();
    return n;
  }
};

// want: hex of the manifest every server must run. known(hex): the store
// holds a release with that manifest (the empty tree's is always known).
// also_ready: another manifest that counts as ready (the tree of the job
// that follows, on a server that already runs it; "" = none).
ConvergePlan PlanConvergence(const std::vector<ServerTree>& servers, const std::string& want,
                             const std::function<bool(const std::string&)>& known,
                             const std::string& also_ready = "");

// The hex of the empty tree's manifest (delta::ManifestHash of no entries).
const std::string& EmptyManifestHex();

}  // namespace cm::push
