// The delta table: cm-delta's versioned binary output and cm-pack's input.
// Format v2, v3 with a base record (v1 still read) in docs/FORMATS.md
// ("Delta table"):
//
//   header  "CMDT" | u16 version=2|3 | u16 flags | u32 reserved(0)    12 bytes
//   record  u8 type | varint length (<= kMaxRecord) | payload[length]
//     kRecBase        v3 only, exactly once, the first record: the tree the
//                     table applies to (TableBase):
//                     str release | varint serial | manifest[32] | result_manifest[32]
//     kRecEntry       one DeltaEntry (payload layout below)
//     kRecDeltaChunk  instruction-stream bytes of the preceding DELTA entry
//     kRecEnd         varint entry_count | hash[32] of every preceding record's bytes
//                     (BLAKE2b-256 over the 12 header bytes and every record's
//                     type, length and payload, in order, up to the END record)
//   Nothing may follow the END record. A DELTA entry has at least one
//   non-empty kRecDeltaChunk; chunks appear only after a DELTA entry.
//   REMOVE entries carry the old object's metadata; META entries the new
//   metadata (mode, uid, gid, mtime; size for files) and no hash.
//
//   entry payload: u8 op | u8 kind | str path | varint mode | varint uid |
//     varint gid | svarint mtime_ns | varint size
//     + file with op ADD/MODIFY:     hash[32]
//     + symlink with op ADD/MODIFY:  str target
//     + file with op MODIFY (v1), ADD or MODIFY (v2): u8 encoding; if DELTA:
//       [v2: str base_path] | varint base_size | base_hash[32]
//   A DELTA entry is followed by kRecDeltaChunk records carrying one
//   instruction stream (delta/instructions.h) that ends with its END opcode.
//   TIMES entry (flag kTableFlagTimeRuns): op 5 | kind 1 | str first | 0 | 0 |
//     0 | svarint mtime_ns (nonzero) | varint count (>= 1) | str last.
//
// Entries come in a deterministic depth-first order: within a directory,
// names sorted bytewise; a directory before its children; when a path
// changes kind (file <-> dir), its REMOVE comes right before its ADD.
// REMOVE of a directory removes its whole subtree (children are not listed).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "util/byte_source.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::delta {

constexpr char kTableMagic[4] = {'C', 'M', 'D', 'T'};
// Version 2 (written): ADD files carry an encoding too, and a DELTA entry
// names its base path (empty: the entry's own path in the old tree).
// Version 1 is still read.
constexpr uint16_t kTableVersion = 2;
// Version 3 = version 2 with a base record (kRecBase) before the first entry.
// A reader that predates it refuses the table ("unsupported version 3").
constexpr uint16_t kTableVersionBase = 3;
constexpr uint16_t kTableFlagChecksum = 1;  // change detection by content hash
// Modification times are not carried (--no-times): every entry's mtime_ns is
// 0 ("leave as is") and a change of mtime alone is no change.
constexpr uint16_t kTableFlagNoTimes = 2;
// TIMES entries may follow the other entries (any table version): runs of the
// new tree's files and directories that share one mtime (Op::kTimes). A
// reader that predates the flag refuses the table ("unknown flags").
constexpr uint16_t kTableFlagTimeRuns = 4;
constexpr uint32_t kMaxRecord = 16 << 20;

enum RecordType : uint8_t { kRecEntry = 1, kRecDeltaChunk = 2, kRecEnd = 3, kRecBase = 4 };
// kTimes (tables with kTableFlagTimeRuns only, after every other entry, in
// walk order, not overlapping): every file and directory of the new tree from
// `path` to `last_path` (both inclusive, walk order; symlinks are neither
// counted nor touched) gets mtime_ns; there are exactly `size` of them. Their
// mtime-only changes have no META entry of their own.
enum class Op : uint8_t { kAdd = 1, kRemove = 2, kModify = 3, kMeta = 4, kTimes = 5 };
enum class Kind : uint8_t { kFile = 1, kDir = 2, kSymlink = 3 };
enum class Encoding : uint8_t { kWhole = 0, kDelta = 1 };

struct DeltaEntry {
  Op op = Op::kAdd;
  Kind kind = Kind::kFile;
  std::string path;         // relative, '/'-separated, never empty, no "." or ".." parts
  uint32_t mode = 0;        // permission bits (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime_ns = 0;     // nanoseconds since the epoch
  uint64_t size = 0;        // new file size (files)
  Hash256 hash{};           // new content hash (files, ADD/MODIFY)
  std::string link_target;  // symlinks, ADD/MODIFY
  Encoding encoding = Encoding::kWhole;  // files, MODIFY
  // DELTA of an ADD file (version 2): the old tree's file the delta is
  // against (a moved or renamed file); empty for MODIFY (the same path).
  std::string base_path;
  uint64_t base_size = 0;   // DELTA: size of the old file
  Hash256 base_hash{};      // DELTA: hash of the old file
  std::string last_path;    // TIMES: the run's last path (path is its first; size its count)
};

// The tree a table applies to (the old tree) and the tree it makes: what
// cm-apply checks before staging it and when the stage is complete
// (delta/manifest.h: the manifest hash names a tree).
struct TableBase {
  std::string release;        // the old tree's release name ("" = not known); <= 255 printable bytes
  uint64_t serial = 0;        // its serial (0 = not known)
  Hash256 manifest{};         // manifest hash of the old tree (zero = do not check)
  Hash256 result_manifest{};  // manifest hash of the tree the table makes (zero = not known)
  bool operator==(const TableBase&) const = default;
};
constexpr size_t kMaxBaseRelease = 255;
// Encodes/decodes the base payload (shared with the assignment's BASE
// command, pack/assignment_format.h). Decode is total: false on anything
// malformed (also a release name that is too long or not printable).
void EncodeTableBase(const TableBase& b, std::string* out);
bool DecodeTableBase(std::string_view payload, TableBase* b);
bool IsZeroHash(const Hash256& h);

const char* OpName(Op op);      // "add", "remove", "modify", "meta", "times"
const char* KindName(Kind k);   // "file", "dir", "symlink"

// Validates a relative content path: non-empty, no leading '/', no empty,
// "." or ".." components, no NUL, at most 4096 bytes.
bool IsSafeRelativePath(const std::string& path);

// Writes a table to a sink. Usage: Begin; for each entry AddEntry, and for a
// DELTA entry AddDeltaBytes (any number of times) before the next entry; End.
class DeltaTableWriter {
 public:
  explicit DeltaTableWriter(ByteSink* sink);
  // Before Begin: the table names its base (written as version 3).
  void SetBase(const TableBase& b) { base_ = b; }
  Status Begin(uint16_t flags);
  Status AddEntry(const DeltaEntry& e);
  Status AddDeltaBytes(const void* data, size_t n);
  Status End();
  uint64_t entries() const { return entries_; }

 private:
  Status WriteRecord(uint8_t type, const std::string& payload);
  ByteSink* sink_;
  Hasher hasher_;
  uint64_t entries_ = 0;
  uint16_t flags_ = 0;
  std::string times_last_;      // last_path of the previous TIMES entry ("" = none yet)
  bool delta_open_ = false;     // the last entry was DELTA
  uint64_t delta_written_ = 0;  // instruction bytes written for it
  std::optional<TableBase> base_;
};

// Reads a table from a source. The parser is total: malformed, truncated or
// oversized input gives kCorrupt, never a crash or an unchecked allocation.
class DeltaTableReader {
 public:
  explicit DeltaTableReader(ByteSource* src);
  // Reads and checks the header (and, version 3, the base record).
  Status Begin();
  uint16_t flags() const { return flags_; }
  uint16_t version() const { return version_; }
  // After Begin: the base record of a version 3 table, else nullopt.
  const std::optional<TableBase>& base() const { return base_; }
  // Next entry: true with *e filled, false at a valid END record (after its
  // count and hash are checked). For a DELTA entry, call ReadDeltaBytes until
  // it returns 0 before calling Next again (Next skips unread bytes).
  Result<bool> Next(DeltaEntry* e);
  // Up to n bytes of the current entry's instruction stream; 0 at its end.
  Result<size_t> ReadDeltaBytes(void* buf, size_t n);

 private:
  Status ReadRecordHeader(uint8_t* type, uint32_t* len);
  ByteSource* src_;
  Hasher hasher_;
  uint16_t flags_ = 0;
  uint16_t version_ = 0;
  uint64_t entries_ = 0;
  // Pending record state
  bool have_peek_ = false;
  uint8_t peek_type_ = 0;
  uint32_t peek_len_ = 0;
  std::string chunk_;
  size_t chunk_pos_ = 0;
  bool in_delta_ = false;
  std::string times_last_;     // last_path of the previous TIMES entry ("" = none yet)
  bool done_ = false;          // END seen and checked
  uint32_t chunk_left_ = 0;    // unread payload bytes of the current chunk record
  uint64_t delta_seen_ = 0;    // instruction bytes read for the current entry
  std::optional<TableBase> base_;
};

}  // namespace cm::delta
