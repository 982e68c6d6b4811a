// The data part's segments (assignment_format.h): the writer groups small
// blobs into shared zstd frames and gives large blobs segments of their own;
// the reader hands out the raw bytes a command refers to, in order, with
// bounded memory.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "pack/assignment_format.h"
#include "util/byte_source.h"

namespace cm::pack {

// Blobs up to this size may share a segment with others.
constexpr uint64_t kShareableMax = 64 * 1024;
// A shared segment is closed once it holds this many raw bytes.
constexpr uint64_t kGroupTarget = 1 << 20;

class SegmentWriter {
 public:
  // out: the plaintext data stream (not owned). level: zstd level of
  // segments of their own; shared_level: of shared segments.
  SegmentWriter(ByteSink* out, int level, int shared_level);
  ~SegmentWriter();
  // Appends a small blob (<= kShareableMax) to the shared zstd segment.
  Result<DataRef> AddShared(const void* p, size_t n);
  // Writes a segment of its own from src, which must yield exactly raw_size bytes.
  // level 0 = the writer's default level.
  Result<DataRef> AddSegment(ByteSource* src, uint64_t raw_size, Codec codec, int level = 0);
  Status Finish();  // closes the shared segment, if any
  uint64_t stored_bytes() const { return stored_; }
  uint64_t pending_shared() const { return group_.size(); }

 private:
  Status FlushGroup();
  Status Emit(const void* p, size_t n);
  Status WriteZstdFrame(ByteSource* src, uint64_t raw_size, int level);
  ByteSink* out_;
  int level_, shared_level_;
  ZSTD_CCtx* cctx_;
  uint64_t next_index_ = 0;
  std::string group_;
  bool group_open_ = false;
  uint64_t stored_ = 0;
};

class SegmentReader {
 public:
  // in: the plaintext data stream (not owned).
  explicit SegmentReader(ByteSource* in);
  ~SegmentReader();
  // A source of exactly ref.length raw bytes; valid until the next Open.
  // kCorrupt when the reference goes backwards, is out of bounds, or the
  // data is malformed.
  Result<ByteSource*> Open(const DataRef& ref);
  // Reads the rest of the stream, checking every segment decodes; kCorrupt
  // if trailing garbage or a malformed segment.
  Status Drain();
  // The next segment whole and streamed, however small (the v3 body: one
  // segment). Valid until the next Open*. kCorrupt when there is none.
  Result<ByteSource*> OpenNextStreamed();
  // kCorrupt unless nothing follows the current segment (call after its
  // source returned 0).
  Status ExpectEnd();

 private:
  class StreamSource;
  class SpanSource;
  Status Fill();
  Status ReadHeader();
  Status SkipCurrent();
  Status DecodeAll(std::string* out);
  Result<size_t> ReadRaw(void* buf, size_t n);  // from the current segment's payload
  ByteSource* in_;
  ZSTD_DCtx* dctx_;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  // Current segment
  int64_t index_ = -1;
  Codec codec_ = Codec::kRaw;
  uint64_t raw_size_ = 0;
  uint64_t produced_ = 0;   // raw bytes of the current segment decoded so far
  bool frame_done_ = false; // zstd frame fully consumed
  bool buffered_ = false;
  std::string seg_;         // decoded buffered segment
  std::unique_ptr<ByteSource> view_;
};

}  // namespace cm::pack
