// Byte-level delta of one file against its old version: copy(offset, length)
// from anywhere in the whole old file and insert(bytes), so inserted or
// removed bytes that shift the rest of the file stay cheap (unlike fixed
// rsync blocks). Matching: the old file is indexed by a hash of every
// block_size-th window; the new file is scanned with a rolling hash at every
// byte; candidate matches are verified and extended in both directions.
#pragma once

#include <cstdint>
#include <string>

#include "delta/instructions.h"
#include "util/status.h"

namespace cm::delta {

struct DeltaOptions {
  // Index one window every block_size bytes of the old file; 0 = choose from
  // the file size (small files get small blocks, the index stays bounded).
  uint32_t block_size = 0;
  // Upper bound on index memory in bytes; block_size grows to respect it.
  uint64_t max_index_bytes = 256ull << 20;
  // Stop early (DeltaStats::exceeded) once the stream would exceed this many
  // bytes; callers pass the file size when a larger delta is useless.
  uint64_t max_stream_bytes = UINT64_MAX;
  // Stop early (DeltaStats::exceeded) when nothing at all could be copied in
  // the first give_up_without_copy bytes of the new data (say, re-encoded media).
  uint64_t give_up_without_copy = UINT64_MAX;
};

struct DeltaStats {
  uint64_t copied = 0;    // bytes reproduced by COPY
  uint64_t inserted = 0;  // bytes sent as literals
  uint64_t stream_bytes = 0;  // encoded instruction bytes
  // True when a limit in DeltaOptions stopped the delta: what was written to
  // the InstructionWriter is incomplete (no END) and must be discarded.
  bool exceeded = false;
};

// Computes the delta of new_data against old_data (both fully in memory or
// memory-mapped) and writes the instruction stream, END included. Literal
// bytes are exact: every match is extended forwards and backwards to the
// first differing byte. Memory: the index, at most opts.max_index_bytes
// (plus a few hundred bytes). Errors come only from the writer's sink.
Status ComputeDelta(const uint8_t* old_data, uint64_t old_size, const uint8_t* new_data,
                    uint64_t new_size, const DeltaOptions& opts, InstructionWriter* out,
                    DeltaStats* stats);

// Estimates whether data looks already compressed or random (order-0 entropy
// of a sample above ~7.5 bits per byte).
bool LooksHighEntropy(const uint8_t* data, uint64_t size);

}  // namespace cm::delta
