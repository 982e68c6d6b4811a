// What a relay knows about an assignment before its middle arrives: parsed
// from the 256-byte header and the tail (trailer and chunk table, format v2,
// docs/FORMATS.md section 3). A relay fetches those two ranges first
// (HeadAndTailRanges), parses them here, then fetches the middle in order and
// checks each chunk against hashes() before it counts as held.
//
//   file := header[256] | middle [covered_begin, covered_end) | tail
//   tail := trailer[128] | chunk table[32 * chunk_count]
//
// Pure: no I/O, no clock. Total: any bytes give a plan or an error.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pack/assignment_format.h"
#include "pack/keys.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::push {

// A half-open range of file offsets [begin, end).
struct ByteRange {
  uint64_t begin = 0;
  uint64_t end = 0;
  uint64_t size() const { return end - begin; }
  bool operator==(const ByteRange&) const = default;
};

// The ranges to fetch before the middle: the header, then the tail.
struct HeadAndTail {
  ByteRange head;  // [0, 256)
  ByteRange tail;  // [covered_end, file_size)
};

// From the 256 header bytes alone. Checks magic, version, header hash and
// fields (kCorrupt), and that the header has a chunk table (version 2;
// kCorrupt for version 1, which cannot be checked chunk by chunk).
Result<HeadAndTail> HeadAndTailRanges(std::string_view header256);

class ChunkPlan {
 public:
  uint64_t file_size() const { return layout_.file_size; }
  uint32_t chunk_size() const { return header_.chunk_size; }
  uint64_t chunk_count() const { return hashes_.size(); }
  // The middle, checked chunk by chunk: the data part and the body.
  uint64_t covered_begin() const { return layout_.covered_begin; }  // 256
  uint64_t covered_end() const { return layout_.covered_end; }
  ByteRange tail() const { return {layout_.covered_end, layout_.file_size}; }
  // hashes()[i] = H(bytes of ChunkRange(i)).
  const std::vector<Hash256>& hashes() const { return hashes_; }
  // File offsets of chunk i; the last chunk may be shorter. An empty range at
  // covered_end when i >= chunk_count().
  ByteRange ChunkRange(uint64_t i) const;
  // The chunk holding the byte at file offset `offset`; nullopt outside
  // [covered_begin, covered_end) (header and tail are not chunks).
  std::optional<uint64_t> ChunkOf(uint64_t offset) const;

  uint64_t serial() const { return header_.serial; }
  const std::string& job_id() const { return header_.job_id; }
  pack::Type type() const { return header_.type; }
  uint32_t part() const { return header_.part; }
  uint8_t flags() const { return header_.flags; }
  // True when ParseChunkPlan was given a key and the signature verified.
  bool signature_checked() const { return signature_checked_; }
  const pack::Header& header() const { return header_; }
  // The exact bytes parsed: the 256-byte header and the 128-byte trailer.
  const std::string& header_bytes() const { return header_bytes_; }
  const std::string& trailer_bytes() const { return trailer_bytes_; }

 private:
  friend Result<ChunkPlan> ParseChunkPlan(std::string_view, std::string_view, const pack::PublicKey*);
  pack::Header header_;
  std::string header_bytes_, trailer_bytes_;
  pack::Layout layout_;
  std::vector<Hash256> hashes_;
  bool signature_checked_ = false;
};

// header256: the file's first 256 bytes; tail: the bytes from covered_end to
// the end of the file (trailer and chunk table; HeadAndTailRanges says where).
// Checks the header (as HeadAndTailRanges), the tail's size, the trailer
// (magic, reserved bytes, H(trailer[0..40)) against the header), the table
// against its hash in the header, and the signature policy:
//   - key_or_null set: the assignment must be signed by that key and the
//     signature over header || trailer[0..40) must verify (kAuth otherwise);
//   - no key: an unsigned assignment must carry no signature bytes (kCorrupt);
//     a signed one is accepted without checking its signature.
// Errors: kCorrupt (malformed, truncated, hash mismatch), kAuth (signature).
Result<ChunkPlan> ParseChunkPlan(std::string_view header256, std::string_view tail,
                                 const pack::PublicKey* key_or_null);

}  // namespace cm::push
