// One core type for every role, so senders, backups, servers and receivers
// can run side by side in one simulator (which drives a single core type).
#pragma once

#include <memory>

#include "mcast/receiver.h"
#include "mcast/sender.h"
#include "mcast/server.h"

namespace cm::mcast {

class McastNode {
 public:
  explicit McastNode(std::unique_ptr<Sender> s) : sender_(std::move(s)) {}
  explicit McastNode(std::unique_ptr<Receiver> r) : receiver_(std::move(r)) {}
  explicit McastNode(std::unique_ptr<Server> v) : server_(std::move(v)) {}

  void Start(Micros now, proto::Effects* out) {
    if (sender_) return sender_->Start(now, out);
    if (server_) return server_->Start(now, out);
    receiver_->Start(now, out);
  }
  void OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
    if (sender_) return sender_->OnDatagram(now, from, bytes, out);
    if (server_) return server_->OnDatagram(now, from, bytes, out);
    receiver_->OnDatagram(now, from, bytes, out);
  }
  void OnTimer(Micros now, proto::Effects* out) {
    if (sender_) return sender_->OnTimer(now, out);
    if (server_) return server_->OnTimer(now, out);
    receiver_->OnTimer(now, out);
  }

  Sender* sender() { return sender_.get(); }
  Receiver* receiver() { return receiver_.get(); }
  Server* server() { return server_.get(); }

 private:
  std::unique_ptr<Sender> sender_;
  std::unique_ptr<Receiver> receiver_;
  std::unique_ptr<Server> server_;
};

}  // namespace cm::mcast
