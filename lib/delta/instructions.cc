#include "delta/instructions.h"

#include <sys/mman.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>

#include "util/byte_io.h"
#include "util/file_util.h"

namespace cm::delta {
namespace {
constexpr size_t kMaxPendingInsert = 1 << 20;  // flush literals at 1 MiB
constexpr size_t kOutBuffer = 1 << 20;
constexpr uint64_t kCopyChunk = 1 << 20;
}  // namespace

Status InstructionWriter::FlushInsert() {
  if (pending_insert_.empty()) return Status::Ok();
  std::string hdr;
  ByteWriter w(&hdr);
  w.U8(kOpInsert);
  w.Varint(pending_insert_.size());
  CM_RETURN_IF_ERROR(sink_->Write(hdr.data(), hdr.size()));
  CM_RETURN_IF_ERROR(sink_->Write(pending_insert_.data(), pending_insert_.size()));
  out_bytes_ += hdr.size() + pending_insert_.size();
  pending_insert_.clear();
  return Status::Ok();
}

Status InstructionWriter::Copy(uint64_t offset, uint64_t length) {
  if (length == 0) return Status::Ok();
  CM_RETURN_IF_ERROR(FlushInsert());
  std::string b;
  ByteWriter w(&b);
  w.U8(kOpCopy);
  w.SVarint(static_cast<int64_t>(offset - prev_end_));
  w.Varint(length);
  prev_end_ = offset + length;
  target_ += length;
  out_bytes_ += b.size();
  return sink_->Write(b.data(), b.size());
}

Status InstructionWriter::Insert(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  target_ += n;
  while (n > 0) {
    size_t take = std::min(n, kMaxPendingInsert - pending_insert_.size());
    pending_insert_.append(p, take);
    p += take;
    n -= take;
    if (pending_insert_.size() >= kMaxPendingInsert) CM_RETURN_IF_ERROR(FlushInsert());
  }
  return Status::Ok();
}

Status InstructionWriter::Finish() {
  CM_RETURN_IF_ERROR(FlushInsert());
  uint8_t end = kOpEnd;
  out_bytes_ += 1;
  return sink_->Write(&end, 1);
}

Status InstructionWriter::Zstd(const void* frame, size_t n, uint64_t decoded_size) {
  CM_RETURN_IF_ERROR(FlushInsert());
  std::string h;
  ByteWriter w(&h);
  w.U8(kOpZstd);
  w.Varint(n);
  CM_RETURN_IF_ERROR(sink_->Write(h.data(), h.size()));
  CM_RETURN_IF_ERROR(sink_->Write(frame, n));
  out_bytes_ += h.size() + n;
  target_ += decoded_size;
  return Status::Ok();
}

PatchApplier::PatchApplier(int base_fd, uint64_t base_size, int out_fd, uint64_t expected_size)
    : base_fd_(base_fd), base_size_(base_size), out_fd_(out_fd), expected_(expected_size) {}

Status PatchApplier::FlushOut() {
  if (out_.empty()) return Status::Ok();
  if (out_hasher_) out_hasher_->Update(out_.data(), out_.size());
  CM_RETURN_IF_ERROR(WriteFull(out_fd_, out_.data(), out_.size()));
  out_.clear();
  return Status::Ok();
}

Status PatchApplier::Feed(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    if (ended_) return Error(Code::kCorrupt, "delta: data after END");
    if (frame_left_ > 0) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, frame_left_));
      CM_RETURN_IF_ERROR(TakeFrameBytes(p, take));
      p += take;
      n -= take;
      continue;
    }
    if (insert_left_ > 0) {
      // Literal bytes go straight to the output without buffering the stream.
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, insert_left_));
      if (take > expected_ - written_) return Error(Code::kCorrupt, "delta: output longer than expected");
      out_.append(p, take);
      written_ += take;
      insert_left_ -= take;
      p += take;
      n -= take;
      if (out_.size() >= kOutBuffer) CM_RETURN_IF_ERROR(FlushOut());
      continue;
    }
    // Buffer just enough to parse one instruction header (at most 21 bytes).
    size_t take = std::min<size_t>(n, 32 - std::min<size_t>(in_.size(), 32));
    in_.append(p, take);
    p += take;
    n -= take;
    bool progressed = true;
    while (progressed && !in_.empty() && insert_left_ == 0 && frame_left_ == 0 && !ended_) {
      CM_RETURN_IF_ERROR(Step(&progressed));
    }
    if ((insert_left_ > 0 || frame_left_ > 0) && !in_.empty()) {
      // Leftover buffered bytes belong to the literal: push them back in front.
      std::string rest = std::move(in_);
      in_.clear();
      CM_RETURN_IF_ERROR(Feed(rest.data(), rest.size()));
    } else if (ended_ && !in_.empty()) {
      return Error(Code::kCorrupt, "delta: data after END");
    }
  }
  return Status::Ok();
}

// Parses one instruction header from in_. Sets *progressed=false when more
// bytes are needed.
Status PatchApplier::Step(bool* progressed) {
  ByteReader r(in_);
  uint8_t op = 0;
  r.U8(&op);
  if (op == kOpEnd) {
    ended_ = true;
    in_.erase(0, 1);
    *progressed = true;
    return Status::Ok();
  }
  if (op == kOpCopy) {
    int64_t rel;
    uint64_t len;
    if (!r.SVarint(&rel) || !r.Varint(&len)) {
      *progressed = false;
      if (in_.size() >= 32) return Error(Code::kCorrupt, "delta: bad COPY");
      return Status::Ok();
    }
    uint64_t off = prev_end_ + static_cast<uint64_t>(rel);
    if (off > base_size_ || len > base_size_ - off)
      return Error(Code::kCorrupt, "delta: COPY outside the base file");
    if (len > expected_ - written_) return Error(Code::kCorrupt, "delta: output longer than expected");
    in_.erase(0, r.position());
    prev_end_ = off + len;
    while (len > 0) {
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(len, kCopyChunk));
      size_t at = out_.size();
      out_.resize(at + chunk);
      auto got = PreadFull(base_fd_, out_.data() + at, chunk, off);
      if (!got.ok()) return got.status();
      if (*got != chunk) return Error(Code::kBaseMismatch, "delta: base file shorter than expected");
      off += chunk;
      len -= chunk;
      written_ += chunk;
      if (out_.size() >= kOutBuffer) CM_RETURN_IF_ERROR(FlushOut());
    }
    *progressed = true;
    return Status::Ok();
  }
  if (op == kOpInsert) {
    uint64_t len;
    if (!r.Varint(&len)) {
      *progressed = false;
      if (in_.size() >= 32) return Error(Code::kCorrupt, "delta: bad INSERT");
      return Status::Ok();
    }
    if (len > expected_ - written_) return Error(Code::kCorrupt, "delta: output longer than expected");
    in_.erase(0, r.position());
    insert_left_ = len;
    // Consume any literal bytes already buffered.
    size_t take = static_cast<size_t>(std::min<uint64_t>(in_.size(), insert_left_));
    out_.append(in_.data(), take);
    written_ += take;
    insert_left_ -= take;
    in_.erase(0, take);
    *progressed = true;
    return Status::Ok();
  }
  if (op == kOpZstd) {
    uint64_t len;
    if (!r.Varint(&len)) {
      *progressed = false;
      if (in_.size() >= 32) return Error(Code::kCorrupt, "delta: bad ZSTD");
      return Status::Ok();
    }
    if (len == 0 || len > kMaxZstdFrame) return Error(Code::kCorrupt, "delta: bad ZSTD frame length");
    if (base_size_ > kMaxZstdBase) return Error(Code::kCorrupt, "delta: ZSTD against a base that is too large");
    in_.erase(0, r.position());
    frame_.clear();
    frame_left_ = len;
    std::string rest = std::move(in_);
    in_.clear();
    size_t take = static_cast<size_t>(std::min<uint64_t>(rest.size(), frame_left_));
    CM_RETURN_IF_ERROR(TakeFrameBytes(rest.data(), take));
    in_ = rest.substr(take);
    *progressed = true;
    return Status::Ok();
  }
  return Error(Code::kCorrupt, "delta: unknown instruction " + std::to_string(op));
}

Status PatchApplier::TakeFrameBytes(const char* p, size_t n) {
  frame_.append(p, n);
  frame_left_ -= n;
  return frame_left_ == 0 ? DecodeFrame() : Status::Ok();
}

// Decodes the buffered frame against the base, mapped read-only for the
// duration (at most kMaxZstdBase bytes), into the output.
Status PatchApplier::DecodeFrame() {
  void* map = nullptr;
  if (base_size_ > 0) {
    map = ::mmap(nullptr, base_size_, PROT_READ, MAP_PRIVATE, base_fd_, 0);
    if (map == MAP_FAILED) return ErrnoError("delta: base", errno);
  }
  ZSTD_DCtx* d = ZSTD_createDCtx();
  Status st = Status::Ok();
  ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 25);  // base + file <= 16 MiB
  if (map != nullptr) ZSTD_DCtx_refPrefix(d, map, base_size_);
  ZSTD_inBuffer in{frame_.data(), frame_.size(), 0};
  std::string buf(1 << 16, '\0');
  size_t rem = 1;
  while (st.ok()) {
    ZSTD_outBuffer ob{buf.data(), buf.size(), 0};
    rem = ZSTD_decompressStream(d, &ob, &in);
    if (ZSTD_isError(rem)) {
      st = Error(Code::kCorrupt, std::string("delta: ZSTD: ") + ZSTD_getErrorName(rem));
      break;
    }
    if (ob.pos > expected_ - written_) {
      st = Error(Code::kCorrupt, "delta: output longer than expected");
      break;
    }
    out_.append(buf.data(), ob.pos);
    written_ += ob.pos;
    if (out_.size() >= kOutBuffer) st = FlushOut();
    if (rem == 0) break;
    if (in.pos == in.size && ob.pos < ob.size) {
      st = Error(Code::kCorrupt, "delta: truncated ZSTD frame");
      break;
    }
  }
  if (st.ok() && in.pos != in.size) st = Error(Code::kCorrupt, "delta: bytes after the ZSTD frame");
  ZSTD_freeDCtx(d);
  if (map != nullptr) ::munmap(map, base_size_);
  frame_.clear();
  frame_.shrink_to_fit();
  return st;
}

Status PatchApplier::Finish() {
  if (!ended_ || insert_left_ > 0 || frame_left_ > 0)
    return Error(Code::kCorrupt, "delta: truncated instruction stream");
  CM_RETURN_IF_ERROR(FlushOut());
  if (written_ != expected_) return Error(Code::kCorrupt, "delta: output size differs from expected");
  return Status::Ok();
}

}  // namespace cm::delta
