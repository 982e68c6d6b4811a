#include "pack/assignment_writer.h"

#include <sodium.h>
#include <unistd.h>

#include <ctime>

#include "pack/crypto_stream.h"
#include "pack/segments.h"
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
  opts_ = opts;
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
  EncodeCommand(c, &body_);
  ++commands_;
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
  h.created_unix = opts_.created_unix ? opts_.created_unix : static_cast<uint64_t>(::time(nullptr));
  h.data_size = impl_->raw->bytes();
  h.data_hash = impl_->raw->Finish();
  h.space_needed = space_needed_;
  h.command_count = commands_;
  if (opts_.sign) h.key_id = opts_.sign->pub.Id();

  // Body, stored encrypted when asked.
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
  if (impl_->chunks) {
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
