// One core type for both roles, so senders, backups and receivers can run
// side by side in one simulator (which drives a single core type).
#pragma once

#include <memory>
#include <variant>

#include "mcast/receiver.h"
#include "mcast/sender.h"

namespace cm::mcast {

class McastNode {
 public:
  explicit McastNode(std::unique_ptr<Sender> s) : sender_(std::move(s)) {}
  explicit McastNode(std::unique_ptr<Receiver> r) : receiver_(std::move(r)) {}

  void Start(Micros now, proto::Effects* out) { sender_ ? sender_->Start(now, out) : receiver_->Start(now, out); }
  void OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
    sender_ ? sender_->OnDatagram(now, from, bytes, out) : receiver_->OnDatagram(now, from, bytes, out);
  }
  void OnTimer(Micros now, proto::Effects* out) { sender_ ? sender_->OnTimer(now, out) : receiver_->OnTimer(now, out); }

  Sender* sender() { return sender_.get(); }
  Receiver* receiver() { return receiver_.get(); }

 private:
  std::unique_ptr<Sender> sender_;
  std::unique_ptr<Receiver> receiver_;
};

}  // namespace cm::mcast
