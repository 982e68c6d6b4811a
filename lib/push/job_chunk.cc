#include "push/job_chunk.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "util/byte_io.h"

namespace cm::push {
namespace {

constexpr size_t kOffVersion = 4, kOffHeaderSize = 6, kOffReserved1 = 36, kOffReserved2 = 56;

uint64_t Le(std::string_view b, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(b[at + i])) << (8 * i);
  return v;
}

bool AllZero(std::string_view b) {
  return std::all_of(b.begin(), b.end(), [](char c) { return c == 0; });
}

Status Bad(const std::string& what) { return Error(Code::kCorrupt, "chunk record: " + what); }

std::string SignedBytes(std::string_view header) {
  std::string m(kSignContext);
  m.append(header.substr(0, kOffSignature));
  return m;
}

}  // namespace

bool IsValidChunkJobId(std::string_view job) {
  if (job.empty() || job.size() > kChunkJobIdMax || job == "." || job == "..") return false;
  return std::all_of(job.begin(), job.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

std::string EncodeChunkHeader(const ChunkHeader& h) {
  std::string out;
  out.reserve(kChunkHeaderSize);
  ByteWriter w(&out);
  w.Bytes(kChunkMagic, 4);
  w.U16(kChunkVersion);
  w.U16(kChunkHeaderSize);
  w.U32(h.flags);
  w.U32(h.item);
  w.U64(h.index);
  w.U64(h.offset);
  w.U32(h.payload_length);
  w.U32(0);
  w.U64(h.total_size);
  w.Bytes(h.key_id.data(), h.key_id.size());
  w.U64(0);
  std::string job = h.job.substr(0, kChunkJobIdMax);
  job.resize(kChunkJobIdMax, '\0');
  w.Bytes(job);
  w.Bytes(h.payload_hash.data(), h.payload_hash.size());
  w.Bytes(h.chain.data(), h.chain.size());
  w.Bytes(h.signature.data(), h.signature.size());
  return out;
}

Result<ChunkHeader> ParseChunkHeader(std::string_view bytes) {
  if (bytes.size() < kChunkHeaderSize)
    return Bad("header: " + std::to_string(bytes.size()) + " bytes, fewer than 256");
  const std::string_view b = bytes.substr(0, kChunkHeaderSize);
  if (std::memcmp(b.data(), kChunkMagic, 4) != 0) return Bad("bad magic (not CMJ1)");
  if (Le(b, kOffVersion, 2) != kChunkVersion) return Bad("unknown version " + std::to_string(Le(b, kOffVersion, 2)));
  if (Le(b, kOffHeaderSize, 2) != kChunkHeaderSize)
    return Bad("header size " + std::to_string(Le(b, kOffHeaderSize, 2)) + ", not 256");
  if (!AllZero(b.substr(kOffReserved1, 4)) || !AllZero(b.substr(kOffReserved2, 8)))
    return Bad("nonzero reserved bytes");
  ChunkHeader h;
  h.flags = static_cast<uint32_t>(Le(b, kOffFlags, 4));
  h.item = static_cast<uint32_t>(Le(b, kOffItem, 4));
  h.index = Le(b, kOffIndex, 8);
  h.offset = Le(b, kOffOffset, 8);
  h.payload_length = static_cast<uint32_t>(Le(b, kOffLength, 4));
  h.total_size = Le(b, kOffTotal, 8);
  std::memcpy(h.key_id.data(), b.data() + kOffKeyId, h.key_id.size());
  std::memcpy(h.payload_hash.data(), b.data() + kOffPayloadHash, 32);
  std::memcpy(h.chain.data(), b.data() + kOffChain, 32);
  std::memcpy(h.signature.data(), b.data() + kOffSignature, 64);
  if (h.flags & ~kFlagEnd) return Bad("unknown flags " + std::to_string(h.flags));
  const std::string_view job_field = b.substr(kOffJob, kChunkJobIdMax);
  const size_t job_len = std::min(job_field.find('\0'), kChunkJobIdMax);
  h.job = std::string(job_field.substr(0, job_len));
  if (!IsValidChunkJobId(h.job) || !AllZero(job_field.substr(job_len))) return Bad("invalid job id");
  if (h.payload_length > kMaxChunkPayload)
    return Bad("payload length " + std::to_string(h.payload_length) + " over the maximum " +
               std::to_string(kMaxChunkPayload));
  if (h.payload_length == 0 && !h.end()) return Bad("empty payload in a record that is not the end");
  if (h.offset > UINT64_MAX - h.payload_length) return Bad("offset overflows");
  const uint64_t want_total = h.end() ? h.offset + h.payload_length : 0;
  if (h.total_size != want_total)
    return Bad("total size " + std::to_string(h.total_size) + ", expected " + std::to_string(want_total));
  return h;
}

Result<size_t> NextChunkRecordSize(std::string_view buf) {
  if (buf.size() < kChunkHeaderSize) return size_t{0};
  CM_ASSIGN_OR_RETURN(ChunkHeader h, ParseChunkHeader(buf));
  return buf.size() < h.record_size() ? size_t{0} : h.record_size();
}

Hash256 GenesisChain(std::string_view job, uint32_t item) {
  std::string m(kGenesisContext);
  std::string field(job.substr(0, kChunkJobIdMax));
  field.resize(kChunkJobIdMax, '\0');
  m += field;
  ByteWriter(&m).U32(item);
  return HashBytes(m.data(), m.size());
}

ChunkCursor StartCursor(std::string_view job, uint32_t item) {
  ChunkCursor c;
  c.chain = GenesisChain(job, item);
  return c;
}

ChunkCursor CursorAfter(const ChunkHeader& h) {
  ChunkCursor c;
  c.index = h.index + 1;
  c.offset = h.offset + h.payload_length;
  c.chain = h.chain;
  c.ended = h.end();
  return c;
}

Hash256 ChainOf(const Hash256& prev, const ChunkHeader& h) {
  const std::string enc = EncodeChunkHeader(h);
  Hasher hs;
  hs.Update(prev.data(), prev.size());
  hs.Update(enc.data(), kOffChain);
  return hs.Finish();
}

// ---- ChunkSigner ----------------------------------------------------------

Result<ChunkSigner> ChunkSigner::Create(const pack::SigningKey& key, std::string job, uint32_t item,
                                        const ChunkCursor& from) {
  if (!IsValidChunkJobId(job)) return Error(Code::kUsage, "invalid job id for chunk records: '" + job + "'");
  ChunkSigner s;
  s.key_ = key;
  s.job_ = std::move(job);
  s.item_ = item;
  s.cursor_ = from;
  return s;
}

Result<ChunkSigner> ChunkSigner::Create(const pack::SigningKey& key, std::string job, uint32_t item) {
  const ChunkCursor from = StartCursor(job, item);
  return Create(key, std::move(job), item, from);
}

ChunkSigner::ChunkSigner(ChunkSigner&& o) noexcept
    : key_(o.key_), job_(std::move(o.job_)), item_(o.item_), cursor_(o.cursor_) {
  sodium_memzero(o.key_.secret.data(), o.key_.secret.size());
}

ChunkSigner& ChunkSigner::operator=(ChunkSigner&& o) noexcept {
  if (this != &o) {
    key_ = o.key_;
    sodium_memzero(o.key_.secret.data(), o.key_.secret.size());
    job_ = std::move(o.job_);
    item_ = o.item_;
    cursor_ = o.cursor_;
  }
  return *this;
}

ChunkSigner::~ChunkSigner() { sodium_memzero(key_.secret.data(), key_.secret.size()); }

Result<std::string> ChunkSigner::Append(std::string_view payload) {
  if (payload.empty()) return Error(Code::kUsage, "an empty chunk payload (only the end record may be empty)");
  return Sign(payload, 0);
}

Result<std::string> ChunkSigner::End(std::string_view last) { return Sign(last, kFlagEnd); }

Result<std::string> ChunkSigner::Sign(std::string_view payload, uint32_t flags) {
  if (cursor_.ended) return Error(Code::kUsage, "item " + std::to_string(item_) + " of job " + job_ + " has ended");
  if (payload.size() > kMaxChunkPayload)
    return Error(Code::kUsage, "chunk payload of " + std::to_string(payload.size()) + " bytes; at most " +
                                   std::to_string(kMaxChunkPayload));
  if (cursor_.offset > UINT64_MAX - payload.size()) return Error(Code::kUsage, "item size overflows");
  ChunkHeader h;
  h.flags = flags;
  h.item = item_;
  h.index = cursor_.index;
  h.offset = cursor_.offset;
  h.payload_length = static_cast<uint32_t>(payload.size());
  h.total_size = (flags & kFlagEnd) ? h.offset + h.payload_length : 0;
  h.key_id = key_.pub.Id();
  h.job = job_;
  h.payload_hash = HashBytes(payload.data(), payload.size());
  h.chain = ChainOf(cursor_.chain, h);
  std::string record = EncodeChunkHeader(h);
  const std::string msg = SignedBytes(record);
  InitCrypto();
  crypto_sign_detached(h.signature.data(), nullptr, reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                       key_.secret.data());
  std::memcpy(record.data() + kOffSignature, h.signature.data(), h.signature.size());
  record.append(payload);
  cursor_ = CursorAfter(h);
  return record;
}

// ---- ChunkVerifier --------------------------------------------------------

ChunkVerifier::ChunkVerifier(const pack::PublicKey& key, std::string job, uint32_t item, const ChunkCursor& from)
    : key_(key), key_id_(key.Id()), job_(std::move(job)), item_(item), cursor_(from) {}

ChunkVerifier::ChunkVerifier(const pack::PublicKey& key, std::string job, uint32_t item)
    : ChunkVerifier(key, job, item, StartCursor(job, item)) {}

Status ChunkVerifier::CheckHeader(const ChunkHeader& h) const {
  if (h.key_id != key_id_)
    return Error(Code::kAuth, "chunk record signed with another key (key id " + ToHex(h.key_id.data(), 8) +
                                  ", expected " + ToHex(key_id_.data(), 8) + ")");
  const std::string msg = SignedBytes(EncodeChunkHeader(h));
  InitCrypto();
  if (crypto_sign_verify_detached(h.signature.data(), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                  key_.bytes.data()) != 0)
    return Error(Code::kAuth, "chunk record: bad signature");
  if (h.job != job_ || h.item != item_)
    return Error(Code::kOrder, "chunk record of job " + h.job + " item " + std::to_string(h.item) + ", expected job " +
                                   job_ + " item " + std::to_string(item_));
  if (cursor_.ended)
    return Error(Code::kOrder, "chunk record " + std::to_string(h.index) + " after the end of item " +
                                   std::to_string(item_) + " (" + std::to_string(cursor_.index) + " records)");
  if (h.index != cursor_.index || h.offset != cursor_.offset)
    return Error(Code::kOrder, "chunk record " + std::to_string(h.index) + " at offset " + std::to_string(h.offset) +
                                   ", expected record " + std::to_string(cursor_.index) + " at offset " +
                                   std::to_string(cursor_.offset));
  if (h.chain != ChainOf(cursor_.chain, h))
    return Error(Code::kOrder, "chunk record " + std::to_string(h.index) +
                                   ": chain mismatch (a record of another history of this item)");
  return Status::Ok();
}

Status ChunkVerifier::Check(const ChunkHeader& h, std::string_view payload) {
  CM_RETURN_IF_ERROR(CheckHeader(h));
  if (payload.size() != h.payload_length)
    return Bad("payload of " + std::to_string(payload.size()) + " bytes, the header says " +
               std::to_string(h.payload_length));
  if (HashBytes(payload.data(), payload.size()) != h.payload_hash) return Bad("payload hash mismatch");
  cursor_ = CursorAfter(h);
  return Status::Ok();
}

Status ChunkVerifier::Check(std::string_view record) {
  CM_ASSIGN_OR_RETURN(ChunkHeader h, ParseChunkHeader(record));
  return Check(h, record.substr(kChunkHeaderSize));
}

}  // namespace cm::push
