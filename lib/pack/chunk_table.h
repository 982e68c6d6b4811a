// The chunk table of assignment format v2 (docs/FORMATS.md, section 3):
// BLAKE2b-256 of every chunk_size piece of the bytes a chunk table covers
// (the data part and the body: [kHeaderSize, kHeaderSize + data_size +
// body_size)); the last piece may be shorter. The table is chunk_count
// 32-byte hashes, stored after the trailer; the header holds chunk_size,
// chunk_count and H(table). Pure: no I/O here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/hash.h"
#include "util/status.h"

namespace cm::pack {

constexpr uint32_t kMinChunkSize = 64 * 1024;
constexpr uint32_t kMaxChunkSize = 64 * 1024 * 1024;
// Small by default: a relay forwards a chunk only once it checks, so the
// chunk is the unit in which bytes move on. With 1 MiB chunks each hop of the
// relay chain sent bursts of 1 MiB every ~0.2 s at 40 Mbit/s, and the queues
// they built on the uplinks delayed the ACKs of the opposite stream
// (docs/BENCHMARKS.md, cm-push). The table costs 32 bytes per 64 KiB (0.05%).
constexpr uint32_t kDefaultChunkSize = 64 * 1024;
// At most this many chunks (a table of at most 128 MiB; 256 GiB of 64 KiB chunks).
constexpr uint64_t kMaxChunkCount = uint64_t{1} << 22;
constexpr size_t kChunkHashSize = 32;

// A power of two in [kMinChunkSize, kMaxChunkSize].
bool IsValidChunkSize(uint64_t chunk_size);
// For options: 0 (no chunk table, format v1) or a valid chunk size; kUsage otherwise.
Status CheckChunkSizeOption(uint64_t chunk_size);
// ceil(covered / chunk_size); 0 for an empty range. chunk_size must be > 0.
uint64_t ChunkCountFor(uint64_t covered, uint64_t chunk_size);

// Hashes a byte stream chunk by chunk. Feed the covered bytes in order; every
// completed chunk's hash is appended to completed(); Finish() adds the last,
// shorter chunk when bytes are pending.
class ChunkHasher {
 public:
  explicit ChunkHasher(uint64_t chunk_size) : chunk_size_(chunk_size) {}
  void Update(const void* p, size_t n);
  void Finish();
  // Hashes of the chunks completed so far (not yet taken).
  std::vector<Hash256>& completed() { return completed_; }
  // Chunks completed in all (including those already taken from completed()).
  uint64_t chunks() const { return chunks_; }

 private:
  uint64_t chunk_size_;
  uint64_t in_chunk_ = 0;  // bytes of the current chunk fed so far
  Hasher hasher_;
  std::vector<Hash256> completed_;
  uint64_t chunks_ = 0;
};

// The table's bytes: the hashes concatenated.
std::string EncodeChunkTable(const std::vector<Hash256>& hashes);
// Splits table bytes into hashes; false unless the size is a multiple of 32.
bool DecodeChunkTable(std::string_view bytes, std::vector<Hash256>* hashes);

}  // namespace cm::pack
