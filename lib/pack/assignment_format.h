// Assignment format v1, v2 and v3: the unit that travels (docs/FORMATS.md,
// "Assignment"). Constants and pure encode/decode shared by the writer
// (cm-pack), the reader (cm-apply) and the relays (lib/push). No I/O here.
//
//   file    := header[256] | data part[data_size] | body[body_size] | trailer[128]
//              | chunk table[32 * chunk_count]      (v2 only: kFlagChunkTable)
//   header  := fixed fields (below) ending in header_hash = H(header[0..224))
//   data    := segment*            (stored encrypted when kFlagEncrypted)
//   segment := u8 codec | varint raw_size | payload
//              payload = raw_size bytes (codec raw) or exactly one zstd frame
//              that decodes to raw_size bytes (codec zstd; self-delimiting)
//   body    := command*            (stored encrypted when kFlagEncrypted)
//   command := u8 opcode | varint length | payload[length]
//   trailer := "CMAT" | u32 0 | body_hash[32] | signature[64] | zero[24]
//
// The data part comes before the body so the packer streams file data once,
// keeping the (small) body in memory and writing it last. H = BLAKE2b-256.
// The Ed25519 signature covers header[0..256) || trailer[0..40), which covers
// the data (data_hash in the header) and the commands (body_hash).
//
// v2 adds the chunk table (pack/chunk_table.h): hashes of the chunks of
// [kHeaderSize, covered_end), covered_end = kHeaderSize + data_size + body_size,
// so a relay can check each chunk as it arrives. The header carries
// chunk_size, chunk_count, H(table) and H(trailer[0..40)); the header hash and
// the signature therefore bind the table and the trailer. The trailer is not
// chunked: the signature it holds signs the header that holds the table.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "delta/delta_table.h"
#include "pack/chunk_table.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::pack {

constexpr char kMagic[4] = {'C', 'M', 'A', 'S'};
constexpr char kTrailerMagic[4] = {'C', 'M', 'A', 'T'};
constexpr uint16_t kVersion1 = 1;  // no chunk table
constexpr uint16_t kVersion2 = 2;  // chunk table after the trailer
// v3: v2's header, chunk table and trailer; the body is the compact command
// encoding (pack/command_codec.h) in one segment (codec raw or zstd).
constexpr uint16_t kVersion3 = 3;
constexpr size_t kHeaderSize = 256;
constexpr size_t kHeaderHashedSize = 224;
constexpr size_t kTrailerSize = 128;
constexpr size_t kSignedTrailerPrefix = 40;
constexpr size_t kJobIdMax = 32;
constexpr uint32_t kMaxCommandPayload = 1 << 20;
// Segments up to this raw size are decoded whole into memory by the reader;
// larger ones are streamed and must be consumed by one command from offset 0.
// The writer groups small files into shared segments (one zstd frame for many
// files) and gives every larger file a segment of its own.
constexpr uint64_t kMaxBufferedSegment = 8 << 20;
// Encrypted parts are a libsodium secretstream (XChaCha20-Poly1305): a 24-byte
// header, then chunks of up to kCryptChunk plaintext bytes + 17 bytes of tag.
constexpr size_t kCryptChunk = 64 * 1024;

enum class Type : uint8_t {
  kPublish = 1,
  kReplicate = 2,
  kSynchronize = 3,
  kRestore = 4,
  kRemove = 5,
  kCommit = 6,
  kRollback = 7,
  kHot = 8,
};
const char* TypeName(Type t);
std::optional<Type> ParseType(std::string_view name);
// Whole-tree types build the staged tree from empty instead of from live.
inline bool IsWholeTree(Type t) { return t == Type::kReplicate || t == Type::kRestore; }
inline bool IsControl(Type t) { return t == Type::kCommit || t == Type::kRollback; }

enum Flags : uint8_t {
  kFlagSigned = 1,
  kFlagEncrypted = 2,
  kFlagLastPart = 4,  // the last assignment of its job (a commit may follow)
  kFlagChunkTable = 8,  // v2: a chunk table follows the trailer
};

struct Header {
  Type type = Type::kPublish;
  uint8_t flags = 0;
  uint32_t part = 1;         // 1-based part number within the job
  uint64_t serial = 0;       // CCM-wide order; > 0
  std::string job_id;        // printable ASCII, 1..32 bytes
  uint64_t created_unix = 0;
  uint64_t data_size = 0;    // stored bytes of the data part
  uint64_t body_size = 0;    // stored bytes of the body
  uint64_t space_needed = 0; // bytes of file content the staged tree gains
  uint64_t command_count = 0;
  Hash256 data_hash{};       // H(stored data part)
  std::array<uint8_t, 8> key_id{};  // first 8 bytes of H(signer public key); zero if unsigned
  // v2 (kFlagChunkTable) only; zero in v1.
  uint32_t chunk_size = 0;   // bytes per chunk: a power of two, 64 KiB..64 MiB
  uint32_t chunk_count = 0;  // = ceil((data_size + body_size) / chunk_size)
  Hash256 table_hash{};      // H(chunk table)
  Hash256 trailer_hash{};    // H(trailer[0..40)): magic, reserved, body hash
  // v3: the body is compact (command_codec.h); requires the chunk table.
  bool compact_body = false;
  // Rollback only (any version): nonzero names the release to switch to,
  // s<rollback_serial, 12 digits>-<job_id> (docs/LAYOUT.md); 0 = back to the
  // previous release. A reader that predates the field refuses a nonzero one
  // ("nonzero reserved header bytes") instead of doing a plain rollback.
  uint64_t rollback_serial = 0;

  bool has_chunk_table() const { return (flags & kFlagChunkTable) != 0; }
  uint16_t version() const {
    return compact_body ? kVersion3 : has_chunk_table() ? kVersion2 : kVersion1;
  }
};

// Where everything is, from a decoded header. Offsets are file offsets.
struct Layout {
  uint64_t covered_begin = 0;  // kHeaderSize: start of the data part
  uint64_t body_begin = 0;
  uint64_t covered_end = 0;    // end of the body = start of the trailer
  uint64_t table_begin = 0;    // covered_end + kTrailerSize
  uint64_t file_size = 0;      // table_begin + 32 * chunk_count
};
// Only for headers DecodeHeader accepted (sizes are bounded there).
Layout LayoutOf(const Header& h);

struct Trailer {
  Hash256 body_hash{};
  std::array<uint8_t, 64> signature{};  // zero when unsigned
};

// Exactly kHeaderSize bytes; version h.version().
std::string EncodeHeader(const Header& h);
// Checks magic, version (1, 2 or 3; others are refused), hash and fields; for v2/v3
// the chunk size and that chunk_count matches the sizes. Errors: kCorrupt.
Status DecodeHeader(std::string_view bytes, Header* h);
std::string EncodeTrailer(const Trailer& t);      // exactly kTrailerSize bytes
Status DecodeTrailer(std::string_view bytes, Trailer* t);
// The bytes an Ed25519 signature covers.
std::string SignedMessage(std::string_view header_bytes, std::string_view trailer_bytes);
// H(trailer[0..40)), the v2 header's trailer_hash.
Hash256 TrailerHash(std::string_view trailer_bytes);
bool IsValidJobId(std::string_view id);

// ---- data part -----------------------------------------------------------
enum class Codec : uint8_t { kRaw = 0, kZstd = 1 };

struct DataRef {
  uint64_t segment = 0;  // index of the segment in the data part
  uint64_t offset = 0;   // offset into the segment's raw (decoded) bytes
  uint64_t length = 0;   // raw bytes
};

// ---- commands ------------------------------------------------------------
enum class Opcode : uint8_t {
  kMkdir = 1,    // path, meta
  kCreate = 2,   // path, meta, size, hash, data
  kPatch = 3,    // path, meta, size, hash, base_size, base_hash, data (instructions)
  kRemove = 4,   // path (a directory with its whole subtree)
  kRename = 5,   // path -> path2
  kCopy = 6,     // path -> path2 (files)
  kSetMeta = 7,  // path, meta
  kSymlink = 8,  // path, target (path2), meta (owner only)
  // The tree the assignment applies to and the tree it makes (base): at most
  // one, the first command, never in commit/rollback. Payload in every body
  // version: str release | varint serial | manifest[32] | result_manifest[32]
  // (delta::EncodeTableBase; no path). Readers that predate it refuse the
  // assignment ("unknown command opcode 9"). AssignmentReader consumes it
  // (base()); NextCommand never returns it.
  kBase = 9,
  // A run of the staged tree's files and directories, from path to path2
  // (both inclusive, walk order: names bytewise within a directory, a
  // directory before its children; symlinks are neither counted nor
  // touched), gets meta.mtime_ns; there must be exactly `size` of them
  // (else kBaseMismatch: the tree is not the one the delta was made from).
  // The delta table's TIMES entry (delta_table.h). Only at the end of a
  // part, after every other command, in order and not overlapping; never in
  // commit/rollback. Payload v1/v2: str path | str path2 | svarint mtime_ns |
  // varint count; v3: see command_codec.h. Readers that predate it refuse
  // the assignment ("unknown command opcode 10").
  kTouch = 10,
};
const char* OpcodeName(Opcode op);

struct Meta {
  uint32_t mode = 0;      // permission bits (07777)
  bool has_owner = false; // uid/gid applied only when set and running as root
  uint32_t uid = 0, gid = 0;
  int64_t mtime_ns = 0;   // 0 = leave as is
};

struct Command {
  Opcode op = Opcode::kMkdir;
  std::string path;   // relative to the content root
  std::string path2;  // rename/copy destination, or symlink target
  Meta meta;
  uint64_t size = 0;  // create/patch: final file size
  Hash256 hash{};     // create/patch: final content hash
  uint64_t base_size = 0;
  Hash256 base_hash{};
  DataRef data;       // create/patch
  delta::TableBase base;  // BASE only
  // create/patch: whether `hash` is carried. v3 carries none: the data is
  // covered by the data hash, the chunk table and the signature, and a patch's
  // result is determined by its (checked) base and its (covered) instructions.
  bool has_hash = true;
};

// Encodes one command (opcode, length, payload) and appends it to *out.
void EncodeCommand(const Command& c, std::string* out);
// Decodes one command payload (opcode known); total parser.
Status DecodeCommandPayload(Opcode op, std::string_view payload, Command* c);

}  // namespace cm::pack
