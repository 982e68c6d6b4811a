// A listener on a cm-leader control channel that finds the current leader
// (and, on request, its member list) without taking part: the core behind
// `cm-leader who`. Pure (proto/core.h): it never sends.
//
// It keeps the Leader Alive with the highest epoch, and the newest Alive of
// every leader it hears (two at once: a split brain); after the first one it
// listens a little longer to catch a newer leader (1.1 heartbeat intervals,
// or 16 when the member list is wanted: three list periods, so that under
// loss a list still arrives) and stops early once the member list of the
// leader it holds has arrived, when that is wanted. It learns members' names
// from their registrations.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "leader/wire.h"
#include "proto/core.h"

namespace cm::leader {

class Observer {
 public:
  // key: the group key when the group authenticates (not owned; may be null).
  Observer(const GroupKey* key, proto::Micros timeout, bool want_members);

  void Start(proto::Micros now, proto::Effects* out);
  void OnDatagram(proto::Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out);
  void OnTimer(proto::Micros now, proto::Effects* out);

  bool done() const { return done_; }
  // The newest leader heard (its Leader Alive), if any.
  const std::optional<Message>& leader() const { return best_; }
  const std::vector<uint64_t>& members() const { return members_; }
  // Every leader heard (its newest Alive), the newest epoch first.
  std::vector<Message> leaders() const;
  // Names members registered with (id -> name), as heard.
  const std::map<uint64_t, std::string>& names() const { return names_; }

 private:
  const GroupKey* key_;
  proto::Micros timeout_;
  bool want_members_;
  proto::Micros deadline_ = proto::kNever;
  std::optional<Message> best_;
  std::vector<uint64_t> members_;
  std::map<uint64_t, Message> all_;
  std::map<uint64_t, std::string> names_;
  bool have_members_ = false;
  bool done_ = false;
};

}  // namespace cm::leader
