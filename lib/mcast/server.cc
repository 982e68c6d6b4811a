#include "mcast/server.h"

#include <algorithm>

namespace cm::mcast {

using proto::kNever;

Server::Server(ServerConfig cfg, std::vector<ServedObject> objects)
    : cfg_(std::move(cfg)),
      objects_(std::move(objects)),
      session_ids_(objects_.size(), 0),
      key_(cfg_.session.key ? &*cfg_.session.key : nullptr),
      rng_(cfg_.seed) {}

void Server::Start(Micros now, proto::Effects* out) {
  out->events.push_back("serving " + std::to_string(objects_.size()) + " objects");
  Pump(now, out);
}

void Server::OnTimer(Micros now, proto::Effects* out) {
  inner_wake_ = kNever;
  if (current_) {
    current_->OnTimer(now, out);
    inner_wake_ = out->wake_at;
  }
  Pump(now, out);
}

void Server::OnDatagram(Micros now, const proto::Address& from, std::string_view bytes, proto::Effects* out) {
  Message m;
  if (Parse(bytes, key_, &m) == ParseResult::kOk && m.type == Type::kWant) OnWant(now, from, m, out);
  inner_wake_ = kNever;
  if (current_) {
    current_->OnDatagram(now, from, bytes, out);
    inner_wake_ = out->wake_at;
  }
  Pump(now, out);
}

int Server::Find(const WantEntry& e) {
  for (size_t i = 0; i < objects_.size(); ++i) {
    const ServedObject& o = objects_[i];
    if (o.name != e.name || o.size != e.size) continue;
    auto h = o.source->Hash();
    if (h && *h == e.hash) return static_cast<int>(i);
  }
  return -1;
}

uint32_t Server::SessionOf(size_t object) {
  if (session_ids_[object]) return session_ids_[object];
  const ServedObject& o = objects_[object];
  size_t n = static_cast<size_t>(std::min<uint64_t>(o.size, kSessionPrefix));
  std::string prefix(n, '\0');
  if (n && !o.source->Read(0, n, reinterpret_cast<uint8_t*>(prefix.data())).ok()) return 0;
  return session_ids_[object] = SessionId(o.name, o.size, prefix);
}

void Server::OnWant(Micros now, const proto::Address& from, const Message& m, proto::Effects* out) {
  if (m.want.id.empty()) return;
  for (const WantEntry& e : m.want.entries) {
    int idx = Find(e);
    if (idx < 0) continue;  // not ours (another server may hold it)
    size_t i = static_cast<size_t>(idx);
    // The running session takes it in itself (Sender::OnWant), unless it is over.
    if (current_ && current_object_ == i && current_->outcome() == Outcome::kRunning) continue;
    auto [it, fresh] = pending_.try_emplace(i);
    if (fresh) {
      it->second.since = now;
      order_.push_back(i);
    }
    if (!it->second.who.count(m.want.id)) out->events.push_back("want " + e.name + " from " + m.want.id);
    it->second.who[m.want.id] = from;
    Message a;
    a.type = Type::kAnswer;
    a.session = SessionOf(i);
    a.answer.code = AnswerCode::kWait;
    a.answer.nack_period_ms = static_cast<uint16_t>(cfg_.session.nack_period / proto::kMillis);
    out->sends.push_back({from, Encode(a, key_), proto::Transport::kDatagram});
  }
}

void Server::Pump(Micros now, proto::Effects* out) {
  if (current_ && current_->finished()) {
    ServedSession s;
    s.name = objects_[current_object_].name;
    s.outcome = current_->outcome();
    s.receivers = current_->receivers();
    s.stats = current_->stats();
    out->events.push_back("served " + s.name + ": " + OutcomeName(s.outcome));
    done_.push_back(std::move(s));
    current_.reset();
    inner_wake_ = kNever;
  }
  Micros gather_at = kNever;
  if (!current_ && !order_.empty()) {
    size_t i = order_.front();
    Pending& p = pending_[i];
    if (now >= p.since + cfg_.gather) {
      const ServedObject& o = objects_[i];
      SenderConfig c = cfg_.session;
      c.name = o.name;
      c.size = o.size;
      c.hash = o.source->Hash();
      c.receivers.clear();
      for (auto& [id, addr] : p.who) c.receivers.push_back(id);
      c.expect = 0;
      c.seed = rng_();
      std::map<std::string, proto::Address> who = std::move(p.who);
      pending_.erase(i);
      order_.pop_front();
      current_object_ = i;
      current_ = std::make_unique<Sender>(std::move(c), o.source);
      out->wake_at = kNever;
      current_->Start(now, out);
      for (auto& [id, addr] : who) current_->AddReceiver(now, id, addr, out);
      inner_wake_ = out->wake_at;
    } else {
      gather_at = p.since + cfg_.gather;
    }
  }
  out->wake_at = std::min(current_ ? inner_wake_ : kNever, gather_at);
}

}  // namespace cm::mcast
