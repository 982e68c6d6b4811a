// The cm-leader control-channel wire format, version 4 (docs/protocol/leader.md).
// Version 2 added the heartbeat number (beat) to Leader Alive. Version 3 adds
// the group evidence: a Claim names the leader it suspects and the newest
// heartbeat of it the claimant knows (and whether it pre-empts a live
// leader), a Register carries the newest heartbeat heard and a registration
// number, and Vouch (7) answers a claim with a newer heartbeat. Version 4
// adds the membership evidence to Register: which members of the leader's
// last list the member heard register since its own previous Register (a
// bitmap over that list, named by the list's hash). Versions 1-3 are still
// parsed (the new fields 0 / empty); everything is sent as version 4, which
// an older node drops: upgrade a segment's nodes together.
// Every message is one UDP datagram on the control channel:
//   "CL" | version u8 | type u8 | flags u8 | body | [auth trailer]
// The parser is total: any byte string yields a Message or nullopt, never a
// crash, and no allocation larger than the datagram.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/core.h"
#include "util/group_key.h"  // GroupKey, the MAC (keyed BLAKE2b-128)

namespace cm::leader {

constexpr uint8_t kWireVersion = 4;     // sent
constexpr uint8_t kWireVersionMin = 1;  // oldest parsed (no beat)
constexpr size_t kMaxMembersOnWire = 4096;
constexpr size_t kMaxNameLen = 255;

enum class MsgType : uint8_t {
  kAlive = 1,     // Leader Alive (LA): the leader's heartbeat
  kClaim = 2,     // Leader Claim (LC): a candidate asks for votes
  kResign = 3,    // the leader stops (SIGTERM): elect now, skip the timeout
  kRegister = 4,  // a member registers with (and refreshes to) the leader it follows
  kMembers = 5,   // the leader's member list
  kMove = 6,      // the leader moves the group to another control channel
  kVouch = 7,     // (v3) a member answers a claim: it heard a newer heartbeat of the suspected leader
};

// Fields common to every message: who sends, the epoch it knows, its priority.
struct Message {
  MsgType type = MsgType::kAlive;
  uint64_t sender = 0;    // unique node id
  uint64_t epoch = 0;     // leader term; 0 = none known yet
  uint32_t priority = 0;  // effective priority (admin << 16 | measured)
  proto::Address addr;    // the sender's unicast address
  // kAlive: heartbeat interval and how many missed intervals mean dead.
  uint32_t interval_us = 0;
  uint8_t dead_intervals = 0;
  uint32_t member_count = 0;  // kAlive: members the leader holds
  uint64_t sequence = 0;      // kAlive: the sequencer's highest committed SAM number (0 without one)
  // kAlive (v2): the leader's heartbeat number, +1 per Leader Alive sent; members
  // estimate the loss from its gaps. 0 = not counted (a v1 sender).
  uint64_t beat = 0;
  // kRegister: the leader the member follows, and its facts.
  // kClaim (v3): the leader the claimant suspects dead (0 = none).
  // kVouch: the leader the voucher heard.
  uint64_t leader = 0;
  // kClaim, kRegister, kVouch (v3): the newest heartbeat number of `leader`
  // the sender knows of (kAlive's beat above).
  // kVouch: how long ago (microseconds) the voucher heard that heartbeat.
  uint64_t age_us = 0;
  // kClaim (v3): the claim pre-empts a live, weaker leader (not a suspicion).
  bool preempt = false;
  // kRegister (v3): the member's registration number, +1 per Register sent;
  // the leader estimates each member's loss from its gaps.
  uint64_t reg_count = 0;
  // kRegister (v4): the member list the digest indexes (ListHash of the
  // sorted ids, 0 = no digest) and one bit per id of it: that member's
  // Register was heard since the sender's previous Register.
  uint64_t list_hash = 0;
  std::vector<bool> heard;
  std::string name;
  uint64_t free_disk_mb = 0;
  uint32_t cpu_permille = 0;
  // kMembers: sorted member ids.
  std::vector<uint64_t> members;
  // kMove: the new control channel.
  proto::Address channel;
  bool operator==(const Message&) const = default;
};

// The name of a member list in a Register's digest: FNV-1a 64 over the
// sorted ids (little-endian), never 0.
uint64_t ListHash(const std::vector<uint64_t>& ids);

// Encodes a message; with a key, appends counter u64 + MAC over everything before.
std::string Encode(const Message& m, const GroupKey* key = nullptr, uint64_t counter = 0);

struct Decoded {
  Message msg;
  bool authenticated = false;
  uint64_t counter = 0;
};
// Total parser. With a key, a message without a valid MAC is rejected; without
// one, an authenticated message is accepted unauthenticated (MAC unchecked).
std::optional<Decoded> Decode(std::string_view bytes, const GroupKey* key = nullptr);

}  // namespace cm::leader
