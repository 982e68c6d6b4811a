#include "pack/assignment_reader.h"

#include "delta/tree_walk.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
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

// Reads a range of the covered bytes ([covered_begin, covered_end)) whole
// chunks at a time: each chunk is read once into memory and compared with the
// verified chunk table before any of its bytes is handed out, so what the
// caller gets is exactly what the signature covers even if the file changes
// after Verify() (the TOCTOU a writer of the file could otherwise use).
// The last few chunks read and checked, shared by every range source of one
// reader: many small files in one chunk hash it once, and the command stream
// and the data being staged do not evict each other.
class ChunkCache {
 public:
  ChunkCache(int fd, const Header& h, const std::vector<Hash256>* table)
      : fd_(fd), layout_(LayoutOf(h)), chunk_size_(h.chunk_size), table_(table) {}
  const Layout& layout() const { return layout_; }
  uint64_t chunk_size() const { return chunk_size_; }
  // The bytes of chunk `index`, read and compared with the verified table.
  Result<std::shared_ptr<const std::string>> Get(uint64_t index) {
    for (auto& e : slots_)
      if (e.second && e.first == index) return std::shared_ptr<const std::string>(e.second);
    if (index >= table_->size()) return Error(Code::kCorrupt, "read beyond the chunk table");
    const uint64_t begin = layout_.covered_begin + index * chunk_size_;
    const uint64_t len = std::min<uint64_t>(chunk_size_, layout_.covered_end - begin);
    auto buf = std::make_shared<std::string>(static_cast<size_t>(len), '\0');
    CM_ASSIGN_OR_RETURN(size_t got, PreadFull(fd_, buf->data(), buf->size(), begin));
    if (got != buf->size() || HashBytes(buf->data(), buf->size()) != (*table_)[index])
      return Error(Code::kCorrupt, "chunk " + std::to_string(index) +
                                       ": hash does not match the signed chunk table (the file is damaged, or changed after verification)");
    slots_[next_] = {index, buf};
    next_ = (next_ + 1) % slots_.size();
    return std::shared_ptr<const std::string>(buf);
  }

 private:
  int fd_;
  Layout layout_;
  uint64_t chunk_size_;
  const std::vector<Hash256>* table_;
  std::array<std::pair<uint64_t, std::shared_ptr<std::string>>, 4> slots_{};
  size_t next_ = 0;
};

// Reads a range of the covered bytes ([covered_begin, covered_end)) whole
// chunks at a time through the reader's ChunkCache: each chunk is compared
// with the verified chunk table before any of its bytes is handed out, so
// what the caller gets is exactly what the signature covers even if the file
// changes after Verify() (the TOCTOU a writer of the file could otherwise use).
class CheckedRangeSource : public ByteSource {
 public:
  CheckedRangeSource(ChunkCache* cache, uint64_t offset, uint64_t length)
      : cache_(cache), pos_(offset), end_(offset + length) {}
  Result<size_t> Read(void* out, size_t n) override {
    n = static_cast<size_t>(std::min<uint64_t>(n, end_ - pos_));
    if (n == 0) return size_t{0};
    const Layout& l = cache_->layout();
    const uint64_t index = (pos_ - l.covered_begin) / cache_->chunk_size();
    if (!chunk_ || index != index_) {
      CM_ASSIGN_OR_RETURN(chunk_, cache_->Get(index));
      index_ = index;
    }
    const uint64_t chunk_begin = l.covered_begin + index * cache_->chunk_size();
    const size_t in_chunk = static_cast<size_t>(pos_ - chunk_begin);
    if (in_chunk >= chunk_->size()) return Error(Code::kCorrupt, "read beyond the covered bytes");
    n = std::min(n, chunk_->size() - in_chunk);
    std::memcpy(out, chunk_->data() + in_chunk, n);
    pos_ += n;
    return n;
  }

 private:
  ChunkCache* cache_;
  uint64_t pos_, end_;
  uint64_t index_ = 0;
  std::shared_ptr<const std::string> chunk_;
};

// Copies the first `size` bytes of `src` into a new unlinked file in `dir`
// (O_TMPFILE; a named file opened O_EXCL|O_NOFOLLOW and unlinked at once
// where the file system has no O_TMPFILE). Nobody else can open the copy.
Result<UniqueFd> PrivateCopy(int src, uint64_t size, const std::string& dir) {
  UniqueFd out(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600));
  if (!out) {
    if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) return ErrnoError(dir, errno);
    uint8_t rnd[12];
    InitCrypto();
    randombytes_buf(rnd, sizeof rnd);
    const std::string name = dir + "/.snapshot-" + ToHex(rnd, sizeof rnd);
    out.reset(::open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!out) return ErrnoError(name, errno);
    ::unlink(name.c_str());
  }
  std::vector<char> buf(1 << 20);
  for (uint64_t off = 0; off < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(size - off, buf.size()));
    CM_ASSIGN_OR_RETURN(size_t got, PreadFull(src, buf.data(), n, off));
    if (got != n) return Error(Code::kCorrupt, "truncated assignment (the file shrank while being read)");
    CM_RETURN_IF_ERROR(WriteFull(out.get(), buf.data(), n));
    off += n;
  }
  return out;
}

}  // namespace

struct AssignmentReader::Impl {
  UniqueFd fd;
  std::string header_bytes, trailer_bytes;
  // v2/v3: the chunk table, read once and checked against the header's
  // table_hash by Verify(); every later read of covered bytes is checked
  // against it (CheckedRangeSource).
  std::vector<Hash256> table;
  bool table_checked = false;
  std::unique_ptr<ChunkCache> chunks;  // once table_checked
  // The range source of covered bytes: chunk-checked when there is a table.
  std::unique_ptr<ByteSource> Range(const Header& h, uint64_t offset, uint64_t length) {
    if (table_checked) {
      if (!chunks) chunks = std::make_unique<ChunkCache>(fd.get(), h, &table);
      return std::make_unique<CheckedRangeSource>(chunks.get(), offset, length);
    }
    return std::make_unique<FileRangeSource>(fd.get(), offset, length);
  }
  // Body iteration
  std::unique_ptr<ByteSource> body_raw;
  std::unique_ptr<DecryptSource> body_dec;
  ByteSource* body = nullptr;
  // v3: the body's one segment, read through a buffer, decoded in context.
  std::unique_ptr<BufferedSource> body_plain;  // before the segment header
  std::unique_ptr<SegmentReader> body_segment;
  std::unique_ptr<ByteSource> body_buffered;
  std::optional<CommandDecoder> decoder;
  uint64_t commands_read = 0;
  // Data
  std::unique_ptr<ByteSource> data_raw;
  std::unique_ptr<DecryptSource> data_dec;
  std::unique_ptr<SegmentReader> segments;
};

AssignmentReader::~AssignmentReader() = default;

Status AssignmentReader::Load(const std::string& path) {
  struct stat st;
  if (::fstat(impl_->fd.get(), &st) != 0) return ErrnoError(path, errno);
  // A directory or fifo given as the file: the argument is wrong (as every
  // tool treats a path of the wrong kind), not the assignment.
  if (!S_ISREG(st.st_mode)) return Error(Code::kUsage, path + ": not a regular file");
  file_size_ = static_cast<uint64_t>(st.st_size);
  if (file_size_ < kHeaderSize + kTrailerSize)
    return Error(Code::kCorrupt, path + ": truncated assignment (" + std::to_string(file_size_) + " bytes)");
  std::string& hb = impl_->header_bytes;
  hb.resize(kHeaderSize);
  auto got = PreadFull(impl_->fd.get(), hb.data(), kHeaderSize, 0);
  if (!got.ok()) return Status(got.status().code(), path + ": " + got.status().message());
  if (*got != kHeaderSize) return Error(Code::kCorrupt, path + ": truncated assignment");
  Status s = DecodeHeader(hb, &header_);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  const Header& h = header_;
  const Layout l = LayoutOf(h);  // DecodeHeader bounded the sizes: no overflow
  if (l.file_size != file_size_) {
    return Error(Code::kCorrupt, path + ": truncated assignment (sizes in header do not match the file size)");
  }
  std::string& tb = impl_->trailer_bytes;
  tb.resize(kTrailerSize);
  got = PreadFull(impl_->fd.get(), tb.data(), kTrailerSize, l.covered_end);
  if (!got.ok()) return Status(got.status().code(), path + ": " + got.status().message());
  if (*got != kTrailerSize) return Error(Code::kCorrupt, path + ": truncated assignment");
  s = DecodeTrailer(tb, &trailer_);
  if (!s.ok()) return Status(s.code(), path + ": " + s.message());
  if (h.has_chunk_table() && TrailerHash(tb) != h.trailer_hash)
    return Error(Code::kCorrupt, path + ": trailer hash mismatch");
  return Status::Ok();
}

Result<std::unique_ptr<AssignmentReader>> AssignmentReader::Open(const std::string& path,
                                                                 const ReaderOptions& opts) {
  std::unique_ptr<AssignmentReader> r(new AssignmentReader());
  r->impl_ = std::make_unique<Impl>();
  r->opts_ = opts;
  r->impl_->fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!r->impl_->fd) return ErrnoError(path, errno);
  CM_RETURN_IF_ERROR(r->Load(path));
  if (!r->header_.has_chunk_table() && !opts.snapshot_dir.empty()) {
    // v1 has no chunk table to check reads against: read a private copy.
    auto copy = PrivateCopy(r->impl_->fd.get(), r->file_size_, opts.snapshot_dir);
    if (!copy.ok()) return Status(copy.status().code(), path + ": " + copy.status().message());
    r->impl_->fd = std::move(copy).value();
    CM_RETURN_IF_ERROR(r->Load(path));
    if (r->header_.has_chunk_table()) return Error(Code::kCorrupt, path + ": the file changed while being read");
  }
  return r;
}

Hash256 AssignmentReader::Id() const {
  std::string msg = SignedMessage(impl_->header_bytes, impl_->trailer_bytes);
  return HashBytes(msg.data(), msg.size());
}

namespace {
// Directories a content path goes through (its '/' count); 0 for "".
size_t PathDepth(const std::string& p) { return static_cast<size_t>(std::count(p.begin(), p.end(), '/')); }

// One pass over the data part and the body: their hashes and, for v2, every
// chunk's hash against the chunk table (read from the file as it goes).
Status HashMiddle(int fd, const Header& h, const std::vector<Hash256>& table, Hash256* data_hash,
                  Hash256* body_hash) {
  const Layout l = LayoutOf(h);
  Hasher data, body;
  std::optional<ChunkHasher> chunks;
  if (h.has_chunk_table()) chunks.emplace(h.chunk_size);
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
        if (checked >= table.size()) return Error(Code::kCorrupt, "more chunks than the chunk table holds");
        if (got != table[checked]) {
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
    // Read once: the hash is checked on these bytes, and these bytes check
    // every later read (DecodeHeader bounded chunk_count).
    const Layout l = LayoutOf(h);
    std::string tbytes(static_cast<size_t>(l.file_size - l.table_begin), '\0');
    CM_ASSIGN_OR_RETURN(size_t got, PreadFull(fd, tbytes.data(), tbytes.size(), l.table_begin));
    if (got != tbytes.size()) return Error(Code::kCorrupt, "truncated chunk table");
    if (HashBytes(tbytes.data(), tbytes.size()) != h.table_hash)
      return Error(Code::kCorrupt, "chunk table hash mismatch");
    if (!DecodeChunkTable(tbytes, &impl_->table) || impl_->table.size() != h.chunk_count)
      return Error(Code::kCorrupt, "malformed chunk table");
  }
  // With a chunk table checked above (under the signature, below) every
  // later read is checked chunk by chunk, so lazy_chunks can leave the data
  // to those reads; else every byte is hashed here.
  if (!(opts_.lazy_chunks && h.has_chunk_table())) {
    Hash256 dh, bh;
    CM_RETURN_IF_ERROR(HashMiddle(fd, h, impl_->table, &dh, &bh));
    if (dh != h.data_hash) return Error(Code::kCorrupt, "data part hash mismatch");
    if (bh != trailer_.body_hash) return Error(Code::kCorrupt, "command sequence hash mismatch");
  }
  impl_->table_checked = h.has_chunk_table();
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
    impl_->body_raw = impl_->Range(h, kHeaderSize + h.data_size, h.body_size);
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
  declared_bytes_ = 0;
  base_.reset();
  Command c;
  uint64_t last_segment = 0;
  bool touched = false;     // a TOUCH came: only TOUCHes may follow
  std::string touch_last;   // the previous TOUCH's last path
  for (;;) {
    auto more = ReadCommand(impl_->body, impl_->decoder ? &*impl_->decoder : nullptr, &c);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (++count > h.command_count) return Error(Code::kCorrupt, "more commands than the header declares");
    if (c.op == pack::Opcode::kBase) {
      if (count != 1) return Error(Code::kCorrupt, "base command not first (or more than one)");
      if (IsControl(h.type)) return Error(Code::kCorrupt, "control assignment carries a base command");
      base_ = c.base;
      continue;
    }
    if (PathDepth(c.path) > kMaxPathDepth || PathDepth(c.path2) > kMaxPathDepth)
      return Error(Code::kUnsafePath, "path nested deeper than " + std::to_string(kMaxPathDepth) +
                                          " directories in assignment: " + c.path.substr(0, 200));
    if (!IsSafeContentPath(c.path))
      return Error(Code::kUnsafePath, "unsafe path in assignment: " + c.path);
    if ((c.op == Opcode::kRename || c.op == Opcode::kCopy || c.op == Opcode::kTouch) && !IsSafeContentPath(c.path2))
      return Error(Code::kUnsafePath, "unsafe path in assignment: " + c.path2);
    if (c.op == Opcode::kTouch) {
      if (delta::ComparePaths(c.path, c.path2) > 0 || c.size == 0 || c.meta.mtime_ns == 0)
        return Error(Code::kCorrupt, "malformed touch command: " + c.path);
      if (touched && delta::ComparePaths(touch_last, c.path) >= 0)
        return Error(Code::kCorrupt, "touch commands overlap or are out of order: " + c.path);
      touched = true;
      touch_last = c.path2;
    } else if (touched) {
      return Error(Code::kCorrupt, "command after a touch command: " + c.path);
    }
    if (c.op == Opcode::kCreate || c.op == Opcode::kPatch) {
      if (c.data.segment < last_segment) return Error(Code::kCorrupt, "data references go backwards");
      last_segment = c.data.segment;
      declared_bytes_ = c.size > UINT64_MAX - declared_bytes_ ? UINT64_MAX : declared_bytes_ + c.size;
    }
  }
  if (impl_->body_segment) CM_RETURN_IF_ERROR(impl_->body_segment->ExpectEnd());
  if (count != h.command_count) return Error(Code::kCorrupt, "command count differs from header");
  if (IsControl(h.type) && count != 0) return Error(Code::kCorrupt, "control assignment carries commands");
  CM_RETURN_IF_ERROR(Reset());

  impl_->data_raw = impl_->Range(h, kHeaderSize, h.data_size);
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
  // The base was taken by Verify (base()); appliers never see it.
  if (r.ok() && *r && c->op == Opcode::kBase) return NextCommand(c);
  return r;
}

Result<ByteSource*> AssignmentReader::OpenData(const DataRef& ref) {
  if (!verified_) return Error(Code::kFailure, "OpenData before Verify");
  if (sealed_) return Error(Code::kAuth, "assignment is encrypted; a group key is needed");
  return impl_->segments->Open(ref);
}

}  // namespace cm::pack
