// cm-pack's library entry points: turn a delta table (plus the new tree it
// describes) into one or more assignment files, or write a control
// assignment (commit, rollback).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "delta/delta_table.h"
#include "pack/assignment_format.h"
#include "pack/compress_policy.h"
#include "pack/keys.h"
#include "util/byte_source.h"
#include "util/status.h"

namespace cm::pack {

struct PackOptions {
  Type type = Type::kPublish;
  std::optional<uint64_t> serial;  // first serial; else serial_file; else time in microseconds
  std::string serial_file;         // holds the last serial used; locked, read, advanced, rewritten
  std::string job_id;              // default: "job-<serial>"
  std::string output;              // first part's path; later parts "<stem>.part<N>.cma"
  // Bytes per assignment file (everything: header, data, commands, trailer,
  // chunk table) before a split; a single item larger than this gets a part
  // of its own.
  uint64_t max_size = 4ull << 30;
  int level = 3;                   // zstd level for whole files
  // zstd level for delta streams of their own (> 64 KiB); random-looking
  // ones get `level` instead.
  int delta_level = 17;
  // zstd level of the shared frames of small blobs (deltas and files up to
  // 64 KiB, frames of at most 1 MiB). 17 saved 4% on three 0.169 -> 0.170
  // before cm-delta's zstd deltas, 4% more after them, for 4x the CPU.
  int small_level = 9;
  bool owners = true;              // carry uid/gid (applied by cm-apply when root)
  CompressPolicy policy = CompressPolicy::Default();
  std::optional<SigningKey> sign;
  std::optional<GroupKey> encrypt;
  // Chunk table (format v2) with chunks of this size; 0 writes format v1.
  uint32_t chunk_size = kDefaultChunkSize;
  // Assignment format (WriterOptions::version): 0 = newest that fits.
  uint16_t version = 0;
  // Rollback only: the release to switch to ("" = the previous one), as
  // s<serial, 12+ digits>-<job>; its job becomes the assignment's job id.
  std::string rollback_release;
  // The BASE command (assignment_format.h Opcode::kBase) of delta types: the
  // delta table's base record with each field replaced when set here (a zero
  // hash = "none": not checked / not known). no_base: no BASE command at all
  // (servers whose cm-apply predates it). Whole-tree types (replicate,
  // restore) apply to any tree: their base manifest, release and serial are
  // dropped, the result manifest kept. In a job of several parts, every part
  // carries the result manifest (checked when the last part is staged) and
  // only part 1 the base manifest.
  std::optional<std::string> base_release;
  std::optional<uint64_t> base_serial;
  std::optional<Hash256> base_manifest, result_manifest;
  bool no_base = false;
};

// The BASE a delta table with base record `from_table` gets under opts (see above).
std::optional<delta::TableBase> EffectiveBase(const std::optional<delta::TableBase>& from_table, const PackOptions& opts);

struct PackedFile {
  std::string path;
  Header header;
};

struct PackResult {
  std::vector<PackedFile> files;
  uint64_t entries = 0;        // delta table entries read
  uint64_t raw_bytes = 0;      // file/delta bytes before compression
  // A delta table with no entries: the assignment changes nothing, and
  // cm-apply makes no new release for it.
  bool no_changes = false;
};

// Reads a delta table from *table; whole files are read from source_root.
Result<PackResult> PackDeltaTable(ByteSource* table, const std::string& source_root, const PackOptions& opts);
// A header-only assignment of type commit (for opts.job_id) or rollback (to
// opts.rollback_release, else to the previous release; job id default
// "rollback-<serial>").
Result<PackResult> PackControl(const PackOptions& opts);
// Splits a release name s<serial>-<job> (exactly as cm-apply names it); kUsage otherwise.
Status ParseReleaseName(const std::string& name, uint64_t* serial, std::string* job);
// Path of part N (1-based) given the first part's path.
std::string PartPath(const std::string& first, uint32_t part);

// Serial allocation (exposed for tests). Reserves `count` consecutive serials:
// opts.serial; else from the serial file: max(last + 1, clock in
// microseconds), the file then holding the last one reserved; else the clock.
// So serials from the clock and from any serial file never trap each other.
Result<uint64_t> AllocateSerials(const PackOptions& opts, uint64_t count);

}  // namespace cm::pack
