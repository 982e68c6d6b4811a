// The byte-level delta instruction stream (format in docs/FORMATS.md, "Delta
// instructions"). Used inside the delta table (cm-delta) and as the data of a
// PATCH command in an assignment (cm-pack, cm-apply).
//
//   0x00                                   END
//   0x01 svarint(offset - prev_end) varint(len)   COPY len bytes of the base at offset
//   0x02 varint(len) bytes[len]            INSERT literal bytes
//
// prev_end starts at 0 and becomes offset+len after every COPY, so copies of
// a mostly unchanged file encode as small numbers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/byte_source.h"
#include "util/hash.h"
#include "util/status.h"

namespace cm::delta {

constexpr uint8_t kOpEnd = 0x00;
constexpr uint8_t kOpCopy = 0x01;
constexpr uint8_t kOpInsert = 0x02;
// ZSTD: varint len | one zstd frame of len bytes whose content, decoded with
// the whole base as its prefix (ZSTD_DCtx_refPrefix), is the next output.
// Only for bases of at most kMaxZstdBase bytes (the applier maps the base).
constexpr uint8_t kOpZstd = 0x03;
constexpr uint64_t kMaxZstdBase = 8 << 20;
constexpr uint64_t kMaxZstdFrame = 16 << 20;

// Appends instructions to a sink. Adjacent inserts are merged. Not thread-safe.
class InstructionWriter {
 public:
  explicit InstructionWriter(ByteSink* sink) : sink_(sink) {}
  Status Copy(uint64_t offset, uint64_t length);
  Status Insert(const void* data, size_t n);
  // A ZSTD instruction: frame (compressed with the base as prefix) decodes to
  // decoded_size bytes of output.
  Status Zstd(const void* frame, size_t n, uint64_t decoded_size);
  Status Finish();  // writes END; no calls after it
  uint64_t output_size() const { return out_bytes_; }
  uint64_t target_size() const { return target_; }

 private:
  Status FlushInsert();
  ByteSink* sink_;
  std::string pending_insert_;
  uint64_t prev_end_ = 0;
  uint64_t out_bytes_ = 0;
  uint64_t target_ = 0;
};

// Applies an instruction stream to a base file, writing the result to out_fd
// sequentially. Bytes of the stream are fed in pieces of any size; memory is
// bounded (a few MiB) whatever the file sizes. Copies are bounds-checked
// against base_size; an INSERT longer than expected_size is rejected.
class PatchApplier {
 public:
  // base_fd is read with pread only. expected_size is the size the output
  // must reach (checked at Finish).
  PatchApplier(int base_fd, uint64_t base_size, int out_fd, uint64_t expected_size);
  // Hashes every output byte as it is written (not owned; may be null), so
  // the caller can check the result without reading the file back.
  void set_output_hasher(Hasher* h) { out_hasher_ = h; }
  // kCorrupt on malformed instructions or out-of-range copies.
  Status Feed(const void* data, size_t n);
  // kCorrupt unless END was seen and exactly expected_size bytes were written.
  Status Finish();
  uint64_t written() const { return written_; }

 private:
  Status Step(bool* progressed);
  Status FlushOut();
  Status TakeFrameBytes(const char* p, size_t n);
  Status DecodeFrame();
  int base_fd_;
  uint64_t base_size_;
  int out_fd_;
  uint64_t expected_;
  uint64_t written_ = 0;
  uint64_t prev_end_ = 0;
  bool ended_ = false;
  uint64_t insert_left_ = 0;  // bytes of a literal still to come
  uint64_t frame_left_ = 0;   // bytes of a ZSTD frame still to come
  std::string frame_;         // the ZSTD frame so far
  std::string in_;            // unparsed instruction bytes (bounded)
  std::string out_;           // output buffer
  Hasher* out_hasher_ = nullptr;
};

}  // namespace cm::delta
