// One item of a cm-push job (issue 17: a file, an assignment, or a live byte
// stream) as a sequence of signed chunk records (docs/FORMATS.md section 7):
//
//   record := header[256] | payload[payload_length]
//
// The base (the CCM) signs every record with its Ed25519 key; a node checks
// each record before it appends the payload to its copy or serves the record
// onward. A chain hash binds each record to all records before it, so order
// and completeness are signed, and the END record (which carries the item's
// total size) signs the end of a stream. Records may be cut at any size from
// 1 byte to kMaxChunkPayload (the edge cuts a live stream by size or by time).
//
// Header (little-endian; the offsets are kOff* below):
//     0  4  magic "CMJ1"
//     4  2  version = 1
//     6  2  header size = 256
//     8  4  flags: kFlagEnd (the last record of the item); other bits 0
//    12  4  item number
//    16  8  chunk index (0, 1, 2, ...)
//    24  8  offset of the payload in the item
//    32  4  payload length (1..kMaxChunkPayload; 0..kMaxChunkPayload for END)
//    36  4  reserved, 0
//    40  8  total size: END: offset + payload length; otherwise 0
//    48  8  key id: PublicKey::Id() of the signer
//    56  8  reserved, 0
//    64 64  job id: ASCII [A-Za-z0-9._-]{1,64}, not "." or "..", NUL-padded
//   128 32  payload hash = H(payload)
//   160 32  chain = H(previous chain || header[0..160)); before record 0 the
//           previous chain is GenesisChain(job, item)
//   192 64  Ed25519 signature over kSignContext || header[0..192)
//
// Pure: no I/O, no clock. Parsers are total; encodings are canonical (a
// header that parses re-encodes to the same 256 bytes).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pack/keys.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::push {

inline constexpr char kChunkMagic[4] = {'C', 'M', 'J', '1'};
inline constexpr uint16_t kChunkVersion = 1;
inline constexpr size_t kChunkHeaderSize = 256;
inline constexpr uint32_t kMaxChunkPayload = 1u << 20;  // 1 MiB
inline constexpr size_t kMaxChunkRecord = kChunkHeaderSize + kMaxChunkPayload;
inline constexpr size_t kChunkJobIdMax = 64;
inline constexpr uint32_t kFlagEnd = 1;
// The signed bytes are this context string (with its NUL) followed by
// header[0..kOffSignature): a signature over a record can never be taken for
// one over an assignment or a CM-Auth stamp made with the same key.
inline constexpr std::string_view kSignContext{"cm-job-chunk-v1", 16};
inline constexpr std::string_view kGenesisContext{"cm-job-chunk-genesis-v1", 24};

inline constexpr size_t kOffFlags = 8, kOffItem = 12, kOffIndex = 16, kOffOffset = 24, kOffLength = 32,
                        kOffTotal = 40, kOffKeyId = 48, kOffJob = 64, kOffPayloadHash = 128, kOffChain = 160,
                        kOffSignature = 192;

// [A-Za-z0-9._-]{1,64}, not "." or "..": safe as a file name.
bool IsValidChunkJobId(std::string_view job);

struct ChunkHeader {
  uint32_t flags = 0;
  uint32_t item = 0;
  uint64_t index = 0;
  uint64_t offset = 0;
  uint32_t payload_length = 0;
  uint64_t total_size = 0;
  std::array<uint8_t, 8> key_id{};
  std::string job;
  Hash256 payload_hash{};
  Hash256 chain{};
  std::array<uint8_t, 64> signature{};

  bool end() const { return flags & kFlagEnd; }
  // The record's size on the wire and in a file: header and payload.
  size_t record_size() const { return kChunkHeaderSize + payload_length; }
  bool operator==(const ChunkHeader&) const = default;
};

// Exactly kChunkHeaderSize bytes. Encodes the fields as they are (no checks):
// a header that does not satisfy ParseChunkHeader's rules encodes to bytes it
// refuses.
std::string EncodeChunkHeader(const ChunkHeader& h);

// Parses the first kChunkHeaderSize bytes of `bytes` (more may follow: the
// payload). Checks everything a header can say about itself, before any
// payload is read: magic, version, header size, flags, reserved bytes, job
// id, payload length (<= kMaxChunkPayload; 0 only for END), total size (END:
// offset + length, no overflow; otherwise 0). Errors: kCorrupt, naming the
// field ("fewer than 256 bytes" for a short buffer). The signature is not
// checked here (ChunkVerifier does).
Result<ChunkHeader> ParseChunkHeader(std::string_view bytes);

// For a reader of concatenated records (an HTTP body, a sidecar stream): the
// size of the first record in `buf` once it is whole, 0 while more bytes are
// needed, or ParseChunkHeader's kCorrupt as soon as the header is whole. Never
// asks for more than kMaxChunkRecord bytes.
Result<size_t> NextChunkRecordSize(std::string_view buf);

// Where verification (or signing) of an item stands: the next record's index
// and payload offset, and the chain of the last record (GenesisChain before
// record 0). Saved on disk, it lets either side resume after a restart.
struct ChunkCursor {
  uint64_t index = 0;
  uint64_t offset = 0;
  Hash256 chain{};
  bool ended = false;  // the END record has been passed: nothing may follow
  bool operator==(const ChunkCursor&) const = default;
};

Hash256 GenesisChain(std::string_view job, uint32_t item);
// The cursor before record 0 of (job, item).
ChunkCursor StartCursor(std::string_view job, uint32_t item);
// The cursor after a record, from its header alone: whoever keeps the last
// record (a node's sidecar, the base's log) resumes verifying or signing
// from it without another file.
ChunkCursor CursorAfter(const ChunkHeader& h);
// H(prev || header[0..kOffChain)) for the header's fields as they are.
Hash256 ChainOf(const Hash256& prev, const ChunkHeader& h);

// Signs the records of one item, in order. Not thread-safe.
class ChunkSigner {
 public:
  // kUsage for an invalid job id. `from` resumes an item signed before
  // (StartCursor(job, item) for a new one).
  static Result<ChunkSigner> Create(const pack::SigningKey& key, std::string job, uint32_t item,
                                    const ChunkCursor& from);
  static Result<ChunkSigner> Create(const pack::SigningKey& key, std::string job, uint32_t item);
  ChunkSigner(ChunkSigner&&) noexcept;
  ChunkSigner& operator=(ChunkSigner&&) noexcept;
  ~ChunkSigner();  // wipes its copy of the secret key

  // The next record (header and payload), 1..kMaxChunkPayload bytes. kUsage
  // for an empty or oversized payload or after End().
  Result<std::string> Append(std::string_view payload);
  // The END record: carries `last` (0..kMaxChunkPayload bytes) and the total
  // size. kUsage after End() or for an oversized payload.
  Result<std::string> End(std::string_view last = {});
  const ChunkCursor& cursor() const { return cursor_; }

 private:
  ChunkSigner() = default;
  Result<std::string> Sign(std::string_view payload, uint32_t flags);
  pack::SigningKey key_;
  std::string job_;
  uint32_t item_ = 0;
  ChunkCursor cursor_;
};

// Checks the records of one item, in order, against the base's public key.
// Check order, and what each error means:
//   kCorrupt  malformed header (ParseChunkHeader), a payload whose size or
//             hash differs from the header;
//   kAuth     signed with another key (key id), or a bad signature: not the
//             base's record, or altered;
//   kOrder    a genuine record of the base, but not the one expected next: of
//             another job or item, another index or offset, another history
//             of this item (chain), or anything after the END record.
// The signature is checked before the record's place, so kOrder always names
// a record the base did sign (a source out of step, not an attacker).
// Not thread-safe.
class ChunkVerifier {
 public:
  // `from`: StartCursor(job, item) for a new item, or a cursor saved after
  // the last record verified before a restart.
  ChunkVerifier(const pack::PublicKey& key, std::string job, uint32_t item, const ChunkCursor& from);
  ChunkVerifier(const pack::PublicKey& key, std::string job, uint32_t item);

  // Everything but the payload: call it on the header alone, before reading
  // a payload of h.payload_length bytes from a socket. Does not advance.
  Status CheckHeader(const ChunkHeader& h) const;
  // CheckHeader, then the payload against the header; advances the cursor.
  Status Check(const ChunkHeader& h, std::string_view payload);
  // A whole record (exactly header and payload): parse, then Check.
  Status Check(std::string_view record);

  const ChunkCursor& cursor() const { return cursor_; }
  const std::string& job() const { return job_; }
  uint32_t item() const { return item_; }

 private:
  pack::PublicKey key_;
  std::array<uint8_t, 8> key_id_{};
  std::string job_;
  uint32_t item_ = 0;
  ChunkCursor cursor_;
};

}  // namespace cm::push
