#include "pack/assignment_reader.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "util/path_util.h"
#include "pack/command_codec.h"
#include "pack/crypto_stream.h"
#include "pack/segments.h"
#include "util/byte_io.h"

namespace cm::pack {
namespace {
// Reads ahead in blocks so that commands can be read a few bytes at a time.
class BufferedSource : public ByteSource {
 public:
  explicit BufferedSource(ByteSource* in) : in_(in) {}
  Result<size_t> Read(void* out, size_t n) override {
    if (pos_ == buf_.size()) {
      CM_RETURN_IF_ERROR(Refill());
      if (buf_.empty()) return size_t{0};
    }
    size_t take = std::min(n, buf_.size() - pos_);
    std::memcpy(out, buf_.data() + pos_, take);
    pos_ += take;
    return take;
  }

  // True when the input has no more bytes.
  Result<bool> AtEnd() {
    if (pos_ == buf_.size()) CM_RETURN_IF_ERROR(Refill());
    return buf_.empty();
  }

 private:
  Status Refill() {
    buf_.resize(kBlock);
    auto r = in_->Read(buf_.data(), buf_.size());
    if (!r.ok()) {
      buf_.clear();
      pos_ = 0;
      return r.status();
    }
    buf_.resize(*r);
    pos_ = 0;
    return Status::Ok();
  }
  static constexpr size_t kBlock = 64 * 1024;
  ByteSource* in_;
  std::string buf_;
  size_t pos_ = 0;
};

}  // namespace

struct AssignmentReader::Impl {
  UniqueFd fd;
  std::string header_bytes, trailer_bytes;
  // Body iteration
  std::unique_ptr<FileRangeSource> body_raw;
  std::unique_ptr<DecryptSource> body_dec;
  ByteSource* body = nullptr;
  // v3: the body's one segment, read through a buffer, decoded in context.
  std::unique_ptr<BufferedSource> body_plain;  // before the segment header
  std::unique_ptr<SegmentReader> body_segment;
  std::unique_ptr<ByteSource> body_buffered;
  std::optional<CommandDecoder> decoder;
  uint64_t commands_read = 0;
  // Data
  std::unique_ptr<FileRangeSource> data_raw;
  std::unique_ptr<DecryptSource> data_dec;
  std::unique_ptr<SegmentReader> segments;
};

AssignmentReader::~AssignmentReader() = default;

Result<std::unique_ptr<AssignmentReader>> AssignmentReader::Open(const std::string& path,
                                                                 const ReaderOptions& opts) {
  std::unique_ptr<AssignmentReader> r(new AssignmentReader());
  r->impl_ = std::make_unique<Impl>();
  r->opts_ = opts;
  r->impl_->fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!r->impl_->fd) return ErrnoError(path, errno);
  struct stat st;
  if (::fstat(r->impl_->fd.get(), &st) != 0) return ErrnoError(path, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kCorrupt, path + ": not a regular file");
  r->file_size_ = static_cast<uint64_t>(st.st_size);
  if (r->file_size_ < kHeaderSize + kTrailerSize)
    return Error(Code::kCorrupt, path + ": truncated assignment (" + std::to_string(r->file_size_) + " bytes)");
  std::string& hb = r->impl_->header_bytes;
  hb.resize(kHeaderSize);
  auto got = PreadFull(r->impl_->fd.get(), hb.data(), kHeaderSize, 0);
  if (!got.ok()) return Status(got.status().code(), path + ": " + got.status().message());
  Status s = DecodeHeader(hb, &r->header_);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  const Header& h = r->header_;
  const Layout l = LayoutOf(h);  // DecodeHeader bounded the sizes: no overflow
  if (l.file_size != r->file_size_) {
    return Error(Code::kCorrupt, path + ": truncated assignment (sizes in header do not match the file size)");
  }
  std::string& tb = r->impl_->trailer_bytes;
  tb.resize(kTrailerSize);
  got = PreadFull(r->impl_->fd.get(), tb.data(), kTrailerSize, l.covered_end);
  if (!got.ok()) return Status(got.status().code(), path + ": " + got.status().message());
  s = DecodeTrailer(tb, &r->trailer_);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  if (h.has_chunk_table() && TrailerHash(tb) != h.trailer_hash)
    return Error(Code::kCorrupt, path + ": trailer hash mismatch");
  return r;
}

Hash256 AssignmentReader::Id() const {
  std::string msg = SignedMessage(impl_->header_bytes, impl_->trailer_bytes);
  return HashBytes(msg.data(), msg.size());
}

namespace {
Result<Hash256> HashRange(int fd, uint64_t off, uint64_t len) {
  Hasher h;
  std::vector<char> buf(1 << 20);
  while (len > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, buf.size()));
    auto r = PreadFull(fd, buf.data(), n, off);
    if (!r.ok()) return r.status();
    if (*r != n) return Error(Code::kCorrupt, "truncated assignment");
    h.Update(buf.data(), n);
    off += n;
    len -= n;
  }
  return h.Finish();
}

// One pass over the data part and the body: their hashes and, for v2, every
// chunk's hash against the chunk table (read from the file as it goes).
Status HashMiddle(int fd, const Header& h, Hash256* data_hash, Hash256* body_hash) {
  const Layout l = LayoutOf(h);
  Hasher data, body;
  std::optional<ChunkHasher> chunks;
  std::optional<FileRangeSource> table;
  if (h.has_chunk_table()) {
    chunks.emplace(h.chunk_size);
    table.emplace(fd, l.table_begin, uint64_t{h.chunk_count} * kChunkHashSize);
  }
  uint64_t checked = 0;
  std::vector<char> buf(1 << 20);
  for (uint64_t off = l.covered_begin; off < l.covered_end;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(l.covered_end - off, buf.size()));
    auto r = PreadFull(fd, buf.data(), n, off);
    if (!r.ok()) return r.status();
    if (*r != n) return Error(Code::kCorrupt, "truncated assignment");
    // The part of this buffer that lies in the data part, and the rest (body).
    size_t in_data = off < l.body_begin ? static_cast<size_t>(std::min<uint64_t>(n, l.body_begin - off)) : 0;
    data.Update(buf.data(), in_data);
    body.Update(buf.data() + in_data, n - in_data);
    if (chunks) {
      chunks->Update(buf.data(), n);
      if (off + n == l.covered_end) chunks->Finish();
      for (const Hash256& got : chunks->completed()) {
        Hash256 want;
        CM_RETURN_IF_ERROR(table->ReadExact(want.data(), want.size(), "chunk table"));
        if (got != want) {
          uint64_t begin = l.covered_begin + checked * h.chunk_size;
          return Error(Code::kCorrupt, "chunk " + std::to_string(checked) + " (bytes " + std::to_string(begin) +
                                           "..) does not match its hash in the chunk table");
        }
        ++checked;
      }
      chunks->completed().clear();
    }
    off += n;
  }
  *data_hash = data.Finish();
  *body_hash = body.Finish();
  return Status::Ok();
}

bool AllZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (p[i]) return false;
  return true;
}

// Reads one command: u8 opcode | varint length | payload. false at end of
// stream. decoder: the v3 context, or null for v1/v2 payloads.
Result<bool> ReadCommand(ByteSource* src, CommandDecoder* decoder, Command* c) {
  uint8_t op;
  auto r = src->Read(&op, 1);
  if (!r.ok()) return r.status();
  if (*r == 0) return false;
  uint64_t len = 0;
  for (int shift = 0;; shift += 7) {
    uint8_t b;
    CM_RETURN_IF_ERROR(src->ReadExact(&b, 1, "command"));
    if (shift > 28) return Error(Code::kCorrupt, "malformed command length");
    len |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
  }
  if (len > kMaxCommandPayload) return Error(Code::kCorrupt, "command too long");
  std::string payload(static_cast<size_t>(len), '\0');
  CM_RETURN_IF_ERROR(src->ReadExact(payload.data(), payload.size(), "command"));
  if (decoder)
    CM_RETURN_IF_ERROR(decoder->Decode(static_cast<Opcode>(op), payload, c));
  else
    CM_RETURN_IF_ERROR(DecodeCommandPayload(static_cast<Opcode>(op), payload, c));
  return true;
}
}  // namespace

Status AssignmentReader::Verify() {
  const Header& h = header_;
  int fd = impl_->fd.get();
  const bool signed_flag = h.flags & kFlagSigned;
  if (opts_.pub_key && !signed_flag)
    return Error(Code::kAuth, "assignment is not signed, but a public key is configured");
  if (!signed_flag) {
    if (!AllZero(trailer_.signature.data(), 64) || !AllZero(h.key_id.data(), 8))
      return Error(Code::kCorrupt, "unsigned assignment carries signature bytes");
  }
  if (opts_.pub_key && std::memcmp(h.key_id.data(), opts_.pub_key->Id().data(), 8) != 0)
    return Error(Code::kAuth, "signed with another key (key id " + ToHex(h.key_id.data(), 8) + ", expected " +
                                  ToHex(opts_.pub_key->Id().data(), 8) + ")");
  const bool sealed = (h.flags & kFlagEncrypted) && !opts_.group_key;
  if (sealed && !opts_.allow_sealed) return Error(Code::kAuth, "assignment is encrypted; a group key is needed");

  if (h.has_chunk_table()) {
    const Layout l = LayoutOf(h);
    CM_ASSIGN_OR_RETURN(Hash256 th, HashRange(fd, l.table_begin, l.file_size - l.table_begin));
    if (th != h.table_hash) return Error(Code::kCorrupt, "chunk table hash mismatch");
  }
  Hash256 dh, bh;
  CM_RETURN_IF_ERROR(HashMiddle(fd, h, &dh, &bh));
  if (dh != h.data_hash) return Error(Code::kCorrupt, "data part hash mismatch");
  if (bh != trailer_.body_hash) return Error(Code::kCorrupt, "command sequence hash mismatch");
  if (opts_.pub_key) {
    std::string msg = SignedMessage(impl_->header_bytes, impl_->trailer_bytes);
    InitCrypto();
    if (crypto_sign_verify_detached(trailer_.signature.data(), reinterpret_cast<const unsigned char*>(msg.data()),
                                    msg.size(), opts_.pub_key->bytes.data()) != 0)
      return Error(Code::kAuth, "bad signature");
  }

  if (sealed) {
    // Integrity and origin are checked; only key holders can read further.
    verified_ = sealed_ = true;
    return Status::Ok();
  }

  // Parse every command before anyone acts on one: structure, count, paths.
  auto Reset = [&]() -> Status {
    impl_->body_buffered.reset();
    impl_->body_segment.reset();
    impl_->body_plain.reset();
    impl_->body_dec.reset();
    impl_->body_raw = std::make_unique<FileRangeSource>(fd, kHeaderSize + h.data_size, h.body_size);
    impl_->body = impl_->body_raw.get();
    if (h.flags & kFlagEncrypted) {
      impl_->body_dec = std::make_unique<DecryptSource>(*opts_.group_key, impl_->body_raw.get());
      impl_->body = impl_->body_dec.get();
    }
    impl_->decoder.reset();
    if (h.compact_body) {
      // An empty plaintext body (no commands) has no segment either.
      impl_->body_plain = std::make_unique<BufferedSource>(impl_->body);
      impl_->body = impl_->body_plain.get();
      CM_ASSIGN_OR_RETURN(bool empty, impl_->body_plain->AtEnd());
      if (!empty) {
        impl_->body_segment = std::make_unique<SegmentReader>(impl_->body_plain.get());
        CM_ASSIGN_OR_RETURN(ByteSource * cmds, impl_->body_segment->OpenNextStreamed());
        impl_->body_buffered = std::make_unique<BufferedSource>(cmds);
        impl_->body = impl_->body_buffered.get();
      }
      impl_->decoder.emplace();
    }
    impl_->commands_read = 0;
    return Status::Ok();
  };
  CM_RETURN_IF_ERROR(Reset());
  uint64_t count = 0;
  Command c;
  uint64_t last_segment = 0;
  for (;;) {
    auto more = ReadCommand(impl_->body, impl_->decoder ? &*impl_->decoder : nullptr, &c);
    if (!more.ok()) return more.status();
    if (!*more) break;
    ++count;
    if (!IsSafeContentPath(c.path))
      return Error(Code::kUnsafePath, "unsafe path in assignment: " + c.path);
    if ((c.op == Opcode::kRename || c.op == Opcode::kCopy) && !IsSafeContentPath(c.path2))
      return Error(Code::kUnsafePath, "unsafe path in assignment: " + c.path2);
    if (c.op == Opcode::kCreate || c.op == Opcode::kPatch) {
      if (c.data.segment < last_segment) return Error(Code::kCorrupt, "data references go backwards");
      last_segment = c.data.segment;
    }
  }
  if (impl_->body_segment) CM_RETURN_IF_ERROR(impl_->body_segment->ExpectEnd());
  if (count != h.command_count) return Error(Code::kCorrupt, "command count differs from header");
  if (IsControl(h.type) && count != 0) return Error(Code::kCorrupt, "control assignment carries commands");
  CM_RETURN_IF_ERROR(Reset());

  impl_->data_raw = std::make_unique<FileRangeSource>(fd, kHeaderSize, h.data_size);
  ByteSource* data = impl_->data_raw.get();
  if (h.flags & kFlagEncrypted) {
    impl_->data_dec = std::make_unique<DecryptSource>(*opts_.group_key, impl_->data_raw.get());
    data = impl_->data_dec.get();
  }
  impl_->segments = std::make_unique<SegmentReader>(data);
  verified_ = true;
  return Status::Ok();
}

Result<bool> AssignmentReader::NextCommand(Command* c) {
  if (!verified_) return Error(Code::kFailure, "NextCommand before Verify");
  if (sealed_) return Error(Code::kAuth, "assignment is encrypted; a group key is needed");
  auto r = ReadCommand(impl_->body, impl_->decoder ? &*impl_->decoder : nullptr, c);
  if (r.ok() && *r) ++impl_->commands_read;
  return r;
}

Result<ByteSource*> AssignmentReader::OpenData(const DataRef& ref) {
  if (!verified_) return Error(Code::kFailure, "OpenData before Verify");
  if (sealed_) return Error(Code::kAuth, "assignment is encrypted; a group key is needed");
  return impl_->segments->Open(ref);
}

}  // namespace cm::pack
