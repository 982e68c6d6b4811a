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
#include <functional>
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
  ByteRange tail;  // [covered_end, file_size): the trailer, then the chunk table
  ByteRange trailer() const { return {tail.begin, tail.begin + pack::kTrailerSize}; }
  ByteRange table() const { return {tail.begin + pack::kTrailerSize, tail.end}; }
  uint64_t chunk_count() const { return table().size() / pack::kChunkHashSize; }
  uint64_t file_size() const { return tail.end; }
};

// What a receiver accepts a header to declare, checked from its 256 bytes
// before anything it declares is read or allocated: an outsider's header
// must not make a relay fetch or hold a large tail before the signature is
// checked (and an unsigned one never). The defaults fit any assignment of up
// to 64 GiB at the default 64 KiB chunk (more with larger chunks).
struct PlanLimits {
  uint64_t max_chunk_count = uint64_t{1} << 20;  // a chunk table of at most 32 MiB
  uint64_t max_file_size = uint64_t{1} << 40;    // 1 TiB
};

// From the 256 header bytes alone. Checks magic, version, header hash and
// fields (kCorrupt), and that the header has a chunk table (version 2;
// kCorrupt for version 1, which cannot be checked chunk by chunk).
Result<HeadAndTail> HeadAndTailRanges(std::string_view header256);
// HeadAndTailRanges, then the declared sizes against `limits`: kCorrupt
// "header declares N chunks (a chunk table of B bytes); at most M accepted"
// or "header declares a file of N bytes; at most M accepted".
Result<HeadAndTail> BoundedHeadAndTailRanges(std::string_view header256, const PlanLimits& limits);

// The signature policy of ParseChunkPlan (below) on the header and the
// 128-byte trailer alone, which is all the signature covers: a receiver
// checks it before it fetches the chunk table. Errors: kCorrupt (malformed),
// kAuth (signature).
Status CheckSignature(std::string_view header256, std::string_view trailer, const pack::PublicKey* key_or_null);

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

// Reads `range` of an assignment (from a file or a source over HTTP): exactly
// range.size() bytes, or an error. It must not read or hold more. Never
// called for an empty range.
using RangeReader = std::function<Result<std::string>(const ByteRange& range)>;

struct LoadedPlan {
  ChunkPlan plan;
  std::string header;  // the 256 bytes
  std::string tail;    // trailer and chunk table
};

// Reads and parses what a receiver needs before the middle, in an order that
// bounds the work an untrusted source can cause: the header; its declared
// sizes against `limits` (BoundedHeadAndTailRanges); `admit`, when given,
// may refuse the declared sizes (a free-space check) before anything more is
// read; with a key, the trailer and the signature over header and trailer
// (CheckSignature), so that an unsigned or forged header never gets its
// chunk table fetched; then the table (its size is now signed, or bounded by
// `limits`), and ParseChunkPlan. Errors: the reader's; kCorrupt (malformed,
// a short read, or over the limits); kAuth; admit's.
Result<LoadedPlan> LoadChunkPlan(const RangeReader& read, const pack::PublicKey* key_or_null,
                                 const PlanLimits& limits,
                                 const std::function<Status(const HeadAndTail&)>& admit = nullptr);

}  // namespace cm::push
