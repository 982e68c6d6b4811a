// How a relay runs the children its core asks for (push::StartChild):
// cm-apply of the serial's spool file, cm-mcast recv into the spool, and
// cm-mcast send of the complete file or of a copy in <spool>/site/ grown
// from the checked bytes while they arrive. The driver's side of
// relay_core.h's children: argv from the relay's options, never a shell;
// each child dies with the relay (util/subprocess.h).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "push/relay_core.h"
#include "pushrun/relay.h"

namespace cm::pushrun {

class Fetcher;

struct RelayChildEnv {
  const RelayOptions* opts = nullptr;
  std::function<std::string(uint64_t serial)> spool_path;              // <spool>/<serial>.cma
  std::function<std::shared_ptr<Fetcher>(uint64_t serial)> fetcher;    // the serial's checked bytes
  const std::atomic<bool>* stopping = nullptr;                         // the relay stops: no more warnings
};

// Runs `c` to its end on the calling thread (blocking); `cancel` ends it
// early (SIGTERM, then SIGKILL). The result's id is the caller's to fill.
push::ChildDone RunRelayChild(const RelayChildEnv& env, const push::StartChild& c, std::atomic<bool>* cancel);

}  // namespace cm::pushrun
