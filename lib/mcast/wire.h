// cm-mcast wire format v4 (docs/protocol/mcast.md). Pure encode/decode: every
// datagram is a 9-byte header, a body by type, and with a group key a 16-byte
// tag (the group MAC of util/group_key.h: keyed BLAKE2b-128) over everything
// before it. Parse() is total: it never reads past its input nor allocates
// from an unchecked length.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/group_key.h"  // GroupKey, the MAC
#include "util/hash.h"

namespace cm::mcast {

constexpr uint16_t kMagic = 0x4d43;  // "CM" little-endian
// 2: late hash in announce, want (type 9), session id from the prefix;
// 3: the tag is the group MAC (keyed BLAKE2b-128) instead of HMAC-SHA-512-256;
// 4: the announce carries the sender's run id, run start and clock (replay defence).
constexpr uint8_t kVersion = 5;
constexpr size_t kHeaderSize = 9;
constexpr size_t kTagSize = kMacSize;
constexpr size_t kDataHeaderSize = kHeaderSize + 16;  // + block, esi, pass, seq, sent_us, len
constexpr size_t kMaxDatagram = 1472;                // 1500-byte MTU minus IP/UDP
constexpr size_t kMaxIdLen = 64;
constexpr size_t kMaxNameLen = 255;
constexpr size_t kMaxListEntries = 256;
constexpr size_t kSessionPrefix = 65536;  // object bytes the session id covers
constexpr size_t kMaxWantEntries = 32;     // entries in one want message

enum class Type : uint8_t {
  kAnnounce = 1,
  kData = 2,
  kStatus = 3,
  kQuery = 4,
  kAnswer = 5,
  kClose = 6,
  kProbe = 7,
  kProbeReply = 8,
  kWant = 9,
};

// Header flags.
constexpr uint8_t kFlagTag = 1;      // a kTagSize tag ends the datagram
constexpr uint8_t kFlagBackup = 2;   // sent by (or, on a status, addressed to) a backup sender
constexpr uint8_t kFlagUnicast = 4;  // came over the unicast stream

// Announce flags.
constexpr uint8_t kAnnounceHashKnown = 1;  // `hash` is the whole-object hash (else zero: not known yet)
constexpr uint8_t kAnnounceGrowing = 2;    // the sender's copy is still arriving (advisory)

struct Announce {
  Hash256 hash{};
  uint8_t flags = 0;        // kAnnounce*
  uint64_t size = 0;
  uint16_t frame_size = 0;  // payload bytes per data frame
  uint8_t block_k = 0;      // data frames per block (the last block may be shorter)
  uint8_t max_passes = 0;
  uint32_t rate_kbps = 0;
  uint16_t nack_period_ms = 0;
  uint8_t phase = 0;        // 0 data flowing, 1 tail (all data sent), 2 done
  uint32_t epoch = 0;       // announcement counter
  // Replay defence (docs/protocol/mcast.md "Replay"): covered by the tag.
  uint64_t run = 0;         // random id of this sender run of the session, never 0
  uint64_t started_ms = 0;  // sender's wall clock (Unix ms) when this run began
  uint64_t stamp_ms = 0;    // sender's wall clock (Unix ms) when this announcement was sent
  std::string name;         // file name, no '/'
  std::string sender_id;
};

struct Data {
  uint32_t block = 0;
  uint8_t esi = 0;          // < k: data frame block*k+esi; >= k: parity symbol
  uint8_t pass = 0;         // 0 first transmission, n = n-th repair round of this block
  uint32_t seq = 0;         // multicast data frames sent before this one in the run (receivers count gaps: loss)
  uint32_t sent_us = 0;     // sender's clock (µs, wrapping) when sent: receivers measure queueing delay
  std::string_view payload; // frame_size bytes (the file's last frame is zero-padded)
};

// A run of consecutive blocks that each need `need` more symbols.
struct NackRun {
  uint32_t first = 0;
  uint32_t count = 0;
  uint8_t need = 0;
  uint8_t seen_pass = 0;  // highest pass heard for these blocks
};

enum class RecvState : uint8_t { kIncomplete = 0, kComplete = 1, kFailed = 2 };

struct StatusReport {
  uint32_t seq = 0;
  RecvState state = RecvState::kIncomplete;
  uint64_t have_bytes = 0;
  uint32_t lost = 0, heard = 0;  // frames lost / heard since the previous report (loss estimate)
  // Queueing delay (µs): the least one-way delay of the multicast data frames
  // heard since the previous report, over the least of the last ~10 s
  // (docs/protocol/mcast.md, "Rate"); 0 when none was heard.
  uint32_t qdelay_us = 0;
  uint64_t unicast = 0;          // unicast data frames received in this session so far
  std::string id;                // receiver name
  std::string reason;            // why failed
  std::vector<NackRun> nacks;    // empty + kIncomplete: nothing missing yet behind the horizon
  bool more = false;             // the list was cut to fit one datagram
};

enum class QueryMode : uint8_t { kAll = 0, kOnlyListed = 1, kAllButListed = 2 };

struct Query {
  uint32_t seq = 0;
  QueryMode mode = QueryMode::kAll;
  std::vector<std::string> ids;
};

enum class AnswerCode : uint8_t { kHereItIs = 1, kWait = 2, kDontHave = 3, kUnicast = 4 };

struct Answer {
  AnswerCode code = AnswerCode::kHereItIs;
  uint16_t nack_period_ms = 0;  // advice: report at this period from now on
  uint32_t block = 0;
};

struct Close {
  uint8_t outcome = 0;  // 0 all done, 1 quorum, 2 failed / given up
};

struct Probe {
  uint32_t nonce = 0;
  std::string sender_id;  // who answers (the primary's id)
};

// One object a receiver should hold (its want list).
struct WantEntry {
  Hash256 hash{};
  uint64_t size = 0;
  std::string name;  // plain file name, as in Announce
};

// Receiver -> group: objects it should hold and does not (header session 0).
struct Want {
  std::string id;                 // receiver name
  std::vector<WantEntry> entries;
  bool more = false;              // more follow in another datagram
};

struct Message {
  Type type = Type::kAnnounce;
  uint8_t flags = 0;
  uint32_t session = 0;
  Announce announce;
  Data data;
  StatusReport status;
  Query query;
  Answer answer;
  Close close;
  Probe probe;  // kProbe and kProbeReply
  Want want;
};

// Encodes m (type, flags, session and the body for m.type). With a key the
// tag flag is set and the tag appended.
std::string Encode(const Message& m, const GroupKey* key = nullptr);

enum class ParseResult { kOk, kBad, kUnauthenticated };
// Total parser. With a key, only correctly tagged datagrams pass; without
// one, tagged datagrams are refused too (we could not check them). On kOk,
// m->data.payload points into `bytes`.
ParseResult Parse(std::string_view bytes, const GroupKey* key, Message* m);

// The session id for an object: derived from its name, its size and its
// first min(size, kSessionPrefix) bytes (`prefix`), so a backup sender or a
// restarted primary uses the same id with no shared state, and a sender can
// start before the whole-object hash is known. Never 0.
uint32_t SessionId(std::string_view name, uint64_t size, std::string_view prefix);

// Want entries that fit one datagram beside a header, an id and a tag.
// Encode() writes at most this many (sets `more` when it cuts).
size_t WantEntriesThatFit(const std::vector<WantEntry>& entries, size_t first, size_t id_len);

}  // namespace cm::mcast
