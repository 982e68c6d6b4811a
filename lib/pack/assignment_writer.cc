#include "pack/assignment_writer.h"

#include <sodium.h>
#include <unistd.h>

#include <zstd.h>

#include <ctime>

#include "pack/crypto_stream.h"
#include "pack/segments.h"
#include "util/byte_io.h"
#include "util/file_util.h"
#include "util/hash.h"

namespace cm::pack {
namespace {
// Writes to the file and hashes what it writes (and feeds the chunk hasher,
// which sees the data part and then the body).
class HashingFileSink : public ByteSink {
 public:
  HashingFileSink(int fd, ChunkHasher* chunks) : fd_(fd), chunks_(chunks) {}
  Status Write(const void* buf, size_t n) override {
    hasher_.Update(buf, n);
    if (chunks_) chunks_->Update(buf, n);
    bytes_ += n;
    return WriteFull(fd_, buf, n);
  }
  Hash256 Finish() { return hasher_.Finish(); }
  uint64_t bytes() const { return bytes_; }

 private:
  int fd_;
  ChunkHasher* chunks_;
  Hasher hasher_;
  uint64_t bytes_ = 0;
};
}  // namespace

Status CheckFormatOption(uint16_t version, uint32_t chunk_size) {
  if (version > kVersion3) return Error(Code::kUsage, "--format: unknown assignment format " + std::to_string(version));
  if (version == kVersion1 && chunk_size != 0)
    return Error(Code::kUsage, "--format 1 has no chunk table (use --chunk-size 0)");
  if (version >= kVersion2 && chunk_size == 0)
    return Error(Code::kUsage, "--format " + std::to_string(version) + " needs a chunk table (--chunk-size)");
  return Status::Ok();
}

Status SealBody(int level, std::string* body) {
  std::string out;
  ByteWriter w(&out);
  if (!body->empty()) {
    std::string z(ZSTD_compressBound(body->size()), '\0');
    size_t n = ZSTD_compress(z.data(), z.size(), body->data(), body->size(), level);
    if (ZSTD_isError(n)) return Error(Code::kFailure, std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n < body->size()) {
      w.U8(static_cast<uint8_t>(Codec::kZstd));
      w.Varint(body->size());
      w.Bytes(z.data(), n);
      *body = std::move(out);
      return Status::Ok();
    }
  }
  w.U8(static_cast<uint8_t>(Codec::kRaw));
  w.Varint(body->size());
  w.Bytes(*body);
  *body = std::move(out);
  return Status::Ok();
}

struct AssignmentWriter::Impl {
  AtomicFile file;
  std::unique_ptr<ChunkHasher> chunks;  // format v2 only
  std::unique_ptr<HashingFileSink> raw;
  std::unique_ptr<EncryptSink> enc;
  std::unique_ptr<SegmentWriter> segments;
};

AssignmentWriter::AssignmentWriter() = default;
AssignmentWriter::~AssignmentWriter() = default;

Status AssignmentWriter::Open(const std::string& path, const WriterOptions& opts) {
  if (!IsValidJobId(opts.job_id))
    return Error(Code::kUsage, "invalid job id '" + opts.job_id + "' (1-32 of A-Z a-z 0-9 . _ -)");
  if (opts.serial == 0) return Error(Code::kUsage, "serial number must be > 0");
  CM_RETURN_IF_ERROR(CheckChunkSizeOption(opts.chunk_size));
  CM_RETURN_IF_ERROR(CheckFormatOption(opts.version, opts.chunk_size));
  opts_ = opts;
  version_ = opts.version ? opts.version : opts.chunk_size ? kVersion3 : kVersion1;
  impl_ = std::make_unique<Impl>();
  if (opts_.chunk_size) impl_->chunks = std::make_unique<ChunkHasher>(opts_.chunk_size);
  CM_RETURN_IF_ERROR(impl_->file.Open(path, 0644));
  std::string zero(kHeaderSize, '\0');
  CM_RETURN_IF_ERROR(WriteFull(impl_->file.fd(), zero.data(), zero.size()));
  impl_->raw = std::make_unique<HashingFileSink>(impl_->file.fd(), impl_->chunks.get());
  ByteSink* data = impl_->raw.get();
  if (opts_.encrypt) {
    impl_->enc = std::make_unique<EncryptSink>(*opts_.encrypt, impl_->raw.get());
    data = impl_->enc.get();
  }
  impl_->segments = std::make_unique<SegmentWriter>(data, opts_.zstd_level, opts_.shared_level);
  return Status::Ok();
}

Result<DataRef> AssignmentWriter::AddBlob(const void* p, size_t n, bool compress) {
  if (compress && n <= kShareableMax) return impl_->segments->AddShared(p, n);
  StringSource src(std::string(static_cast<const char*>(p), n));
  return impl_->segments->AddSegment(&src, n, compress ? Codec::kZstd : Codec::kRaw);
}

Result<DataRef> AssignmentWriter::AddStream(ByteSource* src, uint64_t raw_size, bool compress, int level) {
  return impl_->segments->AddSegment(src, raw_size, compress ? Codec::kZstd : Codec::kRaw, level);
}

void AssignmentWriter::AddCommand(const Command& c) {
  if (version_ == kVersion3)
    encoder_.Encode(c, &body_);
  else
    EncodeCommand(c, &body_);
  ++commands_;
}

uint64_t AssignmentWriter::part_bytes_bound() const {
  if (!impl_) return 0;
  // zstd may grow incompressible input by a little (ZSTD_compressBound).
  const uint64_t pending = impl_->segments->pending_shared();
  const uint64_t body = body_.size() + body_.size() / 128 + 64;
  uint64_t covered = impl_->segments->stored_bytes() + pending + pending / 128 + 64 + body;
  if (opts_.encrypt) covered += (covered / kCryptChunk + 2) * (17 + 24);
  const uint64_t table = opts_.chunk_size ? (covered / opts_.chunk_size + 2) * kChunkHashSize : 0;
  return kHeaderSize + covered + kTrailerSize + table;
}

uint64_t AssignmentWriter::data_bytes() const {
  return impl_ ? impl_->segments->stored_bytes() + impl_->segments->pending_shared() / 3 : 0;
}

Status AssignmentWriter::Finish() {
  int fd = impl_->file.fd();
  CM_RETURN_IF_ERROR(impl_->segments->Finish());
  if (impl_->enc) CM_RETURN_IF_ERROR(impl_->enc->Finish());
  Header& h = header_;
  h.type = opts_.type;
  h.flags = (opts_.sign ? kFlagSigned : 0) | (opts_.encrypt ? kFlagEncrypted : 0) |
            (opts_.last_part ? kFlagLastPart : 0);
  h.part = opts_.part;
  h.serial = opts_.serial;
  h.job_id = opts_.job_id;
  h.rollback_serial = opts_.type == Type::kRollback ? opts_.rollback_serial : 0;
  h.created_unix = opts_.created_unix ? opts_.created_unix : static_cast<uint64_t>(::time(nullptr));
  h.data_size = impl_->raw->bytes();
  h.data_hash = impl_->raw->Finish();
  h.space_needed = space_needed_;
  h.command_count = commands_;
  if (opts_.sign) h.key_id = opts_.sign->pub.Id();

  // Body: v3 puts the compact commands in one segment (one zstd frame when
  // that is smaller); stored encrypted when asked.
  if (version_ == kVersion3 && !body_.empty()) CM_RETURN_IF_ERROR(SealBody(opts_.body_level, &body_));
  h.compact_body = version_ == kVersion3;
  std::string stored_body;
  if (opts_.encrypt) {
    StringSink s;
    EncryptSink e(*opts_.encrypt, &s);
    CM_RETURN_IF_ERROR(e.Write(body_.data(), body_.size()));
    CM_RETURN_IF_ERROR(e.Finish());
    stored_body = std::move(s.data());
  } else {
    stored_body = std::move(body_);
  }
  h.body_size = stored_body.size();
  CM_RETURN_IF_ERROR(WriteFull(fd, stored_body.data(), stored_body.size()));

  Trailer t;
  t.body_hash = HashBytes(stored_body.data(), stored_body.size());
  std::string table;
  if (version_ != kVersion1) {
    impl_->chunks->Update(stored_body.data(), stored_body.size());
    impl_->chunks->Finish();
    const auto& hashes = impl_->chunks->completed();
    if (hashes.size() > kMaxChunkCount)
      return Error(Code::kUsage, "too many chunks (" + std::to_string(hashes.size()) +
                                     "); use a larger chunk size");
    table = EncodeChunkTable(hashes);
    h.flags |= kFlagChunkTable;
    h.chunk_size = opts_.chunk_size;
    h.chunk_count = static_cast<uint32_t>(hashes.size());
    h.table_hash = HashBytes(table.data(), table.size());
    h.trailer_hash = TrailerHash(EncodeTrailer(t));  // the signature is not part of it
  }
  std::string header_bytes = EncodeHeader(h);
  if (opts_.sign) {
    std::string msg = SignedMessage(header_bytes, EncodeTrailer(t));
    crypto_sign_detached(t.signature.data(), nullptr, reinterpret_cast<const unsigned char*>(msg.data()),
                         msg.size(), opts_.sign->secret.data());
  }
  std::string trailer_bytes = EncodeTrailer(t);
  CM_RETURN_IF_ERROR(WriteFull(fd, trailer_bytes.data(), trailer_bytes.size()));
  CM_RETURN_IF_ERROR(WriteFull(fd, table.data(), table.size()));
  CM_RETURN_IF_ERROR(PwriteFull(fd, header_bytes.data(), header_bytes.size(), 0));
  return impl_->file.Commit();
}

}  // namespace cm::pack
