// The SAM ordering messages (docs/protocol/ordering.md "Messages"): one
// struct for all fourteen types, a varint codec with a total parser, and the
// state hash of an applied prefix. Pure: no I/O.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cm::leader {

namespace sam {

// A sequencer's term: higher epoch wins, then round, then id.
struct Ballot {
  uint64_t epoch = 0, round = 0, id = 0;
  auto operator<=>(const Ballot&) const = default;
  bool operator==(const Ballot&) const = default;
};

// One number: the id committed (or proposed) at `seq`, 0 = no-op.
struct Entry {
  uint64_t seq = 0;
  uint64_t id = 0;
  Ballot ballot;                 // the ballot that proposed it (Promise only)
  std::vector<uint64_t> holders; // members known to hold the data (<= 8)
  bool operator==(const Entry&) const = default;
};

enum class Type : uint8_t {
  kAlive = 1,   // seq -> group: ballot, n1 committed, n2 checkpoint seq, ids checkpoint holders
  kHave,        // member -> seq: n1/n2 own checkpoint (seq, hash), entries (seq = stamp ts, id)
  kAssign,      // seq -> commit servers: ballot, entries
  kAck,         // commit server -> seq: ballot, entries (seq, id)
  kCommit,      // seq -> group: ballot, entries committed (in order)
  kRecover,     // new seq -> commit servers: ballot, n1 from
  kPromise,     // commit server -> seq: ballot, n1 from, n2 last accepted, n3 trim floor, entries
  kFenced,      // commit server -> stale seq: ballot = its promise
  kNack,        // member -> peer: n1 first number, n2 count
  kAnswer,      // peer -> member: entries known committed
  kFetch,       // member -> peer: ids wanted
  kData,        // peer -> member: ids it holds (the data travels elsewhere)
  kCkptFetch,   // member -> peer: n1 checkpoint seq wanted (at least)
  kCkpt,        // peer -> member: n1 checkpoint seq, n2 state hash, entries the ids of the `lifetime` numbers up to n1
};

struct Message {
  Type type = Type::kAlive;
  uint64_t sender = 0;
  Ballot ballot;
  uint64_t n1 = 0, n2 = 0, n3 = 0;
  std::vector<Entry> entries;  // <= kMaxEntries
  std::vector<uint64_t> ids;   // <= kMaxEntries
  bool operator==(const Message&) const = default;
};

// In a Promise, an entry the commit server knows committed carries this
// ballot: it wins over every accepted one (it is the only id any ballot may
// propose at that number).
constexpr Ballot kChosen{UINT64_MAX, UINT64_MAX, UINT64_MAX};

constexpr uint8_t kVersion = 1;
constexpr uint64_t kRecoverWindow = 64;  // a Promise carries accepted entries in (n1, n1 + 64]
constexpr uint64_t kNackSpan = 16;       // numbers one Nack asks for
constexpr size_t kMaxEntries = 256;
constexpr size_t kMaxHolders = 8;

std::string Encode(const Message& m);
// Total: false on anything malformed (version, type, lengths, trailing bytes).
bool Decode(std::string_view bytes, Message* out);

// The state hash after applying `id` at `seq` on top of `prev` (a checkpoint
// is (seq, hash of the prefix)). Hash of the empty prefix: 0.
uint64_t ChainHash(uint64_t prev, uint64_t seq, uint64_t id);

}  // namespace sam

}  // namespace cm::leader
