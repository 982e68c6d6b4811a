// Writes one assignment file: data segments stream to disk as they are
// added, commands collect in memory, and Finish() appends body, trailer and
// (format v2) the chunk table, fills in the header and renames the file into
// place (a killed packer never leaves a half assignment under the final name).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "pack/assignment_format.h"
#include "pack/command_codec.h"
#include "pack/keys.h"
#include "util/byte_source.h"
#include "util/status.h"

namespace cm::pack {

struct WriterOptions {
  Type type = Type::kPublish;
  uint64_t serial = 0;
  std::string job_id;
  uint32_t part = 1;
  bool last_part = true;
  uint64_t created_unix = 0;  // 0 = now
  int zstd_level = 3;     // segments of their own
  int shared_level = 19;  // the shared segments of small blobs (small: cheap to squeeze)
  std::optional<SigningKey> sign;
  std::optional<GroupKey> encrypt;
  // A chunk table of this chunk size (IsValidChunkSize); 0 writes format v1
  // (no table).
  uint32_t chunk_size = kDefaultChunkSize;
  // Format version: 0 = the newest that fits (3 with a chunk table, else 1);
  // 2 = a chunk table with the v1/v2 body, for servers that read no v3.
  uint16_t version = 0;
  // zstd level of the v3 body (the compact command list).
  int body_level = 19;
  // Rollback only: the serial of the release to switch to (Header::rollback_serial).
  uint64_t rollback_serial = 0;
};

// kUsage unless the format version (0 = default) and chunk size fit together.
Status CheckFormatOption(uint16_t version, uint32_t chunk_size);

// The v3 body's plaintext from encoded commands: one segment (codec zstd at
// `level` when that is smaller, else raw) holding them all.
Status SealBody(int level, std::string* body);

class AssignmentWriter {
 public:
  AssignmentWriter();
  ~AssignmentWriter();
  // Errors: kUsage for a bad job id, serial or chunk size; I/O errors.
  Status Open(const std::string& path, const WriterOptions& opts);

  // Data: small blobs share a zstd segment (compress=true) or go alone.
  Result<DataRef> AddBlob(const void* p, size_t n, bool compress);
  // A blob of exactly raw_size bytes read from src, in a segment of its own.
  // level 0 = the writer's zstd_level.
  Result<DataRef> AddStream(ByteSource* src, uint64_t raw_size, bool compress, int level = 0);
  void AddCommand(const Command& c);
  void AddSpaceNeeded(uint64_t bytes) { space_needed_ += bytes; }

  // Stored bytes of the data part so far (for size caps).
  uint64_t data_bytes() const;
  // An upper bound of the part's file size if it were finished now: header,
  // stored data, pending shared data and commands uncompressed, trailer,
  // chunk table and encryption overhead (for --max-size).
  uint64_t part_bytes_bound() const;
  uint64_t commands() const { return commands_; }
  void set_last_part(bool last) { opts_.last_part = last; }

  Status Finish();
  const Header& header() const { return header_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  WriterOptions opts_;
  std::string body_;  // encoded commands (plaintext, uncompressed)
  uint64_t commands_ = 0;
  uint16_t version_ = 1;
  uint64_t space_needed_ = 0;
  CommandEncoder encoder_;  // v3
  Header header_;
};

}  // namespace cm::pack
