#include "leader/observer.h"

#include <algorithm>

namespace cm::leader {

Observer::Observer(const GroupKey* key, proto::Micros timeout, bool want_members)
    : key_(key), timeout_(timeout), want_members_(want_members) {}

void Observer::Start(proto::Micros now, proto::Effects* out) {
  deadline_ = now + timeout_;
  out->wake_at = deadline_;
}

void Observer::OnDatagram(proto::Micros now, const proto::Address&, std::string_view bytes, proto::Effects* out) {
  out->wake_at = deadline_;
  if (done_) return;
  auto d = Decode(bytes, key_);
  if (!d) return;
  const Message& m = d->msg;
  if (m.type == MsgType::kAlive) {
    auto [it, fresh] = all_.try_emplace(m.sender, m);
    if (!fresh && m.epoch >= it->second.epoch) it->second = m;
    if (!best_ || m.epoch > best_->epoch) {
      best_ = m;
      have_members_ = false;
    }
    // Listen a little longer to catch a competing, newer leader.
    const proto::Micros extra = want_members_ ? 16 * proto::Micros(m.interval_us) : proto::Micros(m.interval_us) * 11 / 10;
    deadline_ = std::min(deadline_, now + extra);
    if (want_members_ && have_members_) done_ = true;
  } else if (m.type == MsgType::kRegister) {
    if (!m.name.empty()) names_[m.sender] = m.name;
  } else if (m.type == MsgType::kMembers && best_ && m.sender == best_->sender) {
    members_ = m.members;
    have_members_ = true;
    if (want_members_) done_ = true;
  }
  out->wake_at = done_ ? proto::kNever : deadline_;
}

std::vector<Message> Observer::leaders() const {
  std::vector<Message> v;
  for (const auto& [id, m] : all_) v.push_back(m);
  std::stable_sort(v.begin(), v.end(), [](const Message& a, const Message& b) { return a.epoch > b.epoch; });
  return v;
}

void Observer::OnTimer(proto::Micros now, proto::Effects* out) {
  if (now >= deadline_) done_ = true;
  out->wake_at = done_ ? proto::kNever : deadline_;
}

}  // namespace cm::leader
