#include "pack/segments.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "util/byte_io.h"

namespace cm::pack {

constexpr size_t kIoChunk = 1 << 16;

// ---- writer ----------------------------------------------------------------

SegmentWriter::SegmentWriter(ByteSink* out, int level, int shared_level)
    : out_(out), level_(level), shared_level_(shared_level), cctx_(ZSTD_createCCtx()) {}
SegmentWriter::~SegmentWriter() { ZSTD_freeCCtx(cctx_); }

Status SegmentWriter::Emit(const void* p, size_t n) {
  stored_ += n;
  return out_->Write(p, n);
}

Result<DataRef> SegmentWriter::AddShared(const void* p, size_t n) {
  if (group_.size() + n > kGroupTarget && group_open_) CM_RETURN_IF_ERROR(FlushGroup());
  group_open_ = true;  // even an empty blob needs its segment to exist
  DataRef ref{next_index_, group_.size(), n};
  group_.append(static_cast<const char*>(p), n);
  return ref;
}

Status SegmentWriter::FlushGroup() {
  if (!group_open_) return Status::Ok();
  group_open_ = false;
  std::string data = std::move(group_);
  group_.clear();
  StringSource src(data);
  // AddSegment would flush the (now empty) group first; write directly.
  std::string hdr;
  ByteWriter w(&hdr);
  w.U8(static_cast<uint8_t>(Codec::kZstd));
  w.Varint(data.size());
  ++next_index_;
  CM_RETURN_IF_ERROR(Emit(hdr.data(), hdr.size()));
  return WriteZstdFrame(&src, data.size(), shared_level_);
}

Status SegmentWriter::WriteZstdFrame(ByteSource* src, uint64_t raw_size, int level) {
  ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_only);
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 0);
  ZSTD_CCtx_setPledgedSrcSize(cctx_, raw_size);
  std::vector<char> in(kIoChunk), outbuf(ZSTD_CStreamOutSize());
  uint64_t left = raw_size;
  for (;;) {
    size_t got = 0;
    if (left > 0) {
      auto r = src->Read(in.data(), static_cast<size_t>(std::min<uint64_t>(in.size(), left)));
      if (!r.ok()) return r.status();
      if (*r == 0) return Error(Code::kIo, "input ended early (changed while packing?)");
      got = *r;
      left -= got;
    }
    ZSTD_inBuffer ib{in.data(), got, 0};
    ZSTD_EndDirective mode = left == 0 ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      ZSTD_outBuffer ob{outbuf.data(), outbuf.size(), 0};
      size_t rem = ZSTD_compressStream2(cctx_, &ob, &ib, mode);
      if (ZSTD_isError(rem)) return Error(Code::kFailure, std::string("zstd: ") + ZSTD_getErrorName(rem));
      CM_RETURN_IF_ERROR(Emit(outbuf.data(), ob.pos));
      bool done = mode == ZSTD_e_end ? rem == 0 : ib.pos == ib.size;
      if (done) break;
    }
    if (mode == ZSTD_e_end) return Status::Ok();
  }
}

Result<DataRef> SegmentWriter::AddSegment(ByteSource* src, uint64_t raw_size, Codec codec, int level) {
  CM_RETURN_IF_ERROR(FlushGroup());
  DataRef ref{next_index_++, 0, raw_size};
  std::string hdr;
  ByteWriter w(&hdr);
  w.U8(static_cast<uint8_t>(codec));
  w.Varint(raw_size);
  CM_RETURN_IF_ERROR(Emit(hdr.data(), hdr.size()));
  if (codec == Codec::kZstd) {
    CM_RETURN_IF_ERROR(WriteZstdFrame(src, raw_size, level ? level : level_));
  } else {
    std::vector<char> buf(kIoChunk);
    uint64_t left = raw_size;
    while (left > 0) {
      auto r = src->Read(buf.data(), static_cast<size_t>(std::min<uint64_t>(buf.size(), left)));
      if (!r.ok()) return r.status();
      if (*r == 0) return Error(Code::kIo, "input ended early (changed while packing?)");
      CM_RETURN_IF_ERROR(Emit(buf.data(), *r));
      left -= *r;
    }
  }
  // The source must be exhausted exactly at raw_size.
  char extra;
  auto r = src->Read(&extra, 1);
  if (!r.ok()) return r.status();
  if (*r != 0) return Error(Code::kIo, "input longer than expected (changed while packing?)");
  return ref;
}

Status SegmentWriter::Finish() { return FlushGroup(); }

// ---- reader ----------------------------------------------------------------

SegmentReader::SegmentReader(ByteSource* in) : in_(in), dctx_(ZSTD_createDCtx()) {}
SegmentReader::~SegmentReader() { ZSTD_freeDCtx(dctx_); }

Status SegmentReader::Fill() {
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  if (eof_) return Status::Ok();
  size_t at = buf_.size();
  buf_.resize(at + kIoChunk);
  auto r = in_->Read(buf_.data() + at, kIoChunk);
  if (!r.ok()) {
    buf_.resize(at);
    return r.status();
  }
  buf_.resize(at + *r);
  if (*r == 0) eof_ = true;
  return Status::Ok();
}

Status SegmentReader::ReadHeader() {
  // codec (1) + varint (<= 10)
  while (buf_.size() - pos_ < 11 && !eof_) CM_RETURN_IF_ERROR(Fill());
  if (buf_.size() == pos_) return Error(Code::kCorrupt, "data part ends before a referenced segment");
  ByteReader r(buf_.data() + pos_, buf_.size() - pos_);
  uint8_t codec;
  uint64_t raw;
  if (!r.U8(&codec) || !r.Varint(&raw)) return Error(Code::kCorrupt, "truncated segment header");
  if (codec > 1) return Error(Code::kCorrupt, "unknown segment codec " + std::to_string(codec));
  pos_ += r.position();
  ++index_;
  codec_ = static_cast<Codec>(codec);
  raw_size_ = raw;
  produced_ = 0;
  frame_done_ = false;
  buffered_ = false;
  seg_.clear();
  if (codec_ == Codec::kZstd) ZSTD_DCtx_reset(dctx_, ZSTD_reset_session_only);
  return Status::Ok();
}

Result<size_t> SegmentReader::ReadRaw(void* out, size_t n) {
  n = static_cast<size_t>(std::min<uint64_t>(n, raw_size_ - produced_));
  if (n == 0) {
    if (codec_ == Codec::kZstd && !frame_done_) {
      // Consume the end of the frame (it may still hold its epilogue).
      for (;;) {
        if (pos_ == buf_.size()) {
          CM_RETURN_IF_ERROR(Fill());
          if (pos_ == buf_.size()) return Error(Code::kCorrupt, "truncated zstd frame");
        }
        char sink[1];
        ZSTD_inBuffer ib{buf_.data() + pos_, buf_.size() - pos_, 0};
        ZSTD_outBuffer ob{sink, 0, 0};
        size_t rem = ZSTD_decompressStream(dctx_, &ob, &ib);
        if (ZSTD_isError(rem)) return Error(Code::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(rem));
        pos_ += ib.pos;
        if (rem == 0) {
          frame_done_ = true;
          break;
        }
        if (ib.pos == 0 && ob.pos == 0 && pos_ < buf_.size())
          return Error(Code::kCorrupt, "segment decodes to more bytes than declared");
      }
    }
    return size_t{0};
  }
  if (codec_ == Codec::kRaw) {
    if (pos_ == buf_.size()) {
      CM_RETURN_IF_ERROR(Fill());
      if (pos_ == buf_.size()) return Error(Code::kCorrupt, "truncated data segment");
    }
    size_t take = std::min(n, buf_.size() - pos_);
    std::memcpy(out, buf_.data() + pos_, take);
    pos_ += take;
    produced_ += take;
    return take;
  }
  for (;;) {
    if (frame_done_) return Error(Code::kCorrupt, "zstd frame shorter than declared");
    if (pos_ == buf_.size()) {
      CM_RETURN_IF_ERROR(Fill());
      if (pos_ == buf_.size()) return Error(Code::kCorrupt, "truncated zstd frame");
    }
    ZSTD_inBuffer ib{buf_.data() + pos_, buf_.size() - pos_, 0};
    ZSTD_outBuffer ob{out, n, 0};
    size_t rem = ZSTD_decompressStream(dctx_, &ob, &ib);
    if (ZSTD_isError(rem)) return Error(Code::kCorrupt, std::string("zstd: ") + ZSTD_getErrorName(rem));
    pos_ += ib.pos;
    if (rem == 0) frame_done_ = true;
    if (ob.pos > 0) {
      produced_ += ob.pos;
      if (frame_done_ && produced_ < raw_size_) return Error(Code::kCorrupt, "zstd frame shorter than declared");
      return ob.pos;
    }
  }
}

Status SegmentReader::SkipCurrent() {
  if (index_ < 0 || buffered_) return Status::Ok();
  std::vector<char> scratch(kIoChunk);
  for (;;) {
    auto r = ReadRaw(scratch.data(), scratch.size());
    if (!r.ok()) return r.status();
    if (*r == 0) return Status::Ok();
  }
}

Status SegmentReader::DecodeAll(std::string* out) {
  out->resize(static_cast<size_t>(raw_size_));
  size_t got = 0;
  while (got < out->size()) {
    auto r = ReadRaw(out->data() + got, out->size() - got);
    if (!r.ok()) return r.status();
    if (*r == 0) return Error(Code::kCorrupt, "truncated data segment");
    got += *r;
  }
  auto r = ReadRaw(nullptr, 0);  // consume the frame epilogue
  return r.status();
}

class SegmentReader::SpanSource : public ByteSource {
 public:
  SpanSource(const char* p, size_t n) : p_(p), n_(n) {}
  Result<size_t> Read(void* buf, size_t n) override {
    n = std::min(n, n_ - pos_);
    std::memcpy(buf, p_ + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  const char* p_;
  size_t n_, pos_ = 0;
};

class SegmentReader::StreamSource : public ByteSource {
 public:
  explicit StreamSource(SegmentReader* r) : r_(r) {}
  Result<size_t> Read(void* buf, size_t n) override {
    auto got = r_->ReadRaw(buf, n);
    if (got.ok() && *got == 0) {
      auto end = r_->ReadRaw(nullptr, 0);
      if (!end.ok()) return end.status();
    }
    return got;
  }

 private:
  SegmentReader* r_;
};

Result<ByteSource*> SegmentReader::Open(const DataRef& ref) {
  view_.reset();
  if (static_cast<int64_t>(ref.segment) < index_)
    return Error(Code::kCorrupt, "data reference goes backwards");
  if (static_cast<int64_t>(ref.segment) == index_ && !buffered_)
    return Error(Code::kCorrupt, "a streamed segment is referenced twice");
  while (static_cast<int64_t>(ref.segment) > index_) {
    CM_RETURN_IF_ERROR(SkipCurrent());
    CM_RETURN_IF_ERROR(ReadHeader());
    if (raw_size_ <= kMaxBufferedSegment) {
      CM_RETURN_IF_ERROR(DecodeAll(&seg_));
      buffered_ = true;
    }
  }
  if (buffered_) {
    if (ref.offset > seg_.size() || ref.length > seg_.size() - ref.offset)
      return Error(Code::kCorrupt, "data reference outside its segment");
    view_ = std::make_unique<SpanSource>(seg_.data() + ref.offset, static_cast<size_t>(ref.length));
    return view_.get();
  }
  if (ref.offset != 0 || ref.length != raw_size_)
    return Error(Code::kCorrupt, "a large segment must be referenced whole");
  view_ = std::make_unique<StreamSource>(this);
  return view_.get();
}

Status SegmentReader::Drain() {
  view_.reset();
  CM_RETURN_IF_ERROR(SkipCurrent());
  for (;;) {
    while (buf_.size() == pos_ && !eof_) CM_RETURN_IF_ERROR(Fill());
    if (buf_.size() == pos_) return Status::Ok();
    CM_RETURN_IF_ERROR(ReadHeader());
    CM_RETURN_IF_ERROR(SkipCurrent());
  }
}

}  // namespace cm::pack

namespace cm::pack {

Result<ByteSource*> SegmentReader::OpenNextStreamed() {
  view_.reset();
  CM_RETURN_IF_ERROR(SkipCurrent());
  CM_RETURN_IF_ERROR(ReadHeader());
  view_ = std::make_unique<StreamSource>(this);
  return view_.get();
}

Status SegmentReader::ExpectEnd() {
  view_.reset();
  CM_RETURN_IF_ERROR(SkipCurrent());
  while (buf_.size() == pos_ && !eof_) CM_RETURN_IF_ERROR(Fill());
  if (buf_.size() != pos_) return Error(Code::kCorrupt, "bytes after the last segment");
  return Status::Ok();
}

}  // namespace cm::pack
