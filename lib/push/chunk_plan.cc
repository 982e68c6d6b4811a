#include "push/chunk_plan.h"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace cm::push {
namespace {

using pack::Header;

Status DecodeChunkedHeader(std::string_view header256, Header* h) {
  if (header256.size() != pack::kHeaderSize)
    return Error(Code::kCorrupt, "header is " + std::to_string(header256.size()) + " bytes, not 256");
  CM_RETURN_IF_ERROR(pack::DecodeHeader(header256, h));
  if (!h->has_chunk_table())
    return Error(Code::kCorrupt, "assignment version 1 has no chunk table (repack with cm-pack --chunk-size)");
  return Status::Ok();
}

bool AllZero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

}  // namespace

Result<HeadAndTail> HeadAndTailRanges(std::string_view header256) {
  Header h;
  CM_RETURN_IF_ERROR(DecodeChunkedHeader(header256, &h));
  const pack::Layout l = pack::LayoutOf(h);
  return HeadAndTail{{0, pack::kHeaderSize}, {l.covered_end, l.file_size}};
}

ByteRange ChunkPlan::ChunkRange(uint64_t i) const {
  if (i >= hashes_.size()) return {layout_.covered_end, layout_.covered_end};
  const uint64_t begin = layout_.covered_begin + i * header_.chunk_size;
  return {begin, std::min<uint64_t>(begin + header_.chunk_size, layout_.covered_end)};
}

std::optional<uint64_t> ChunkPlan::ChunkOf(uint64_t offset) const {
  if (offset < layout_.covered_begin || offset >= layout_.covered_end) return std::nullopt;
  return (offset - layout_.covered_begin) / header_.chunk_size;
}

Result<ChunkPlan> ParseChunkPlan(std::string_view header256, std::string_view tail,
                                 const pack::PublicKey* key_or_null) {
  ChunkPlan p;
  Header& h = p.header_;
  CM_RETURN_IF_ERROR(DecodeChunkedHeader(header256, &h));
  p.layout_ = pack::LayoutOf(h);
  const uint64_t want_tail = p.layout_.file_size - p.layout_.covered_end;
  if (tail.size() != want_tail)
    return Error(Code::kCorrupt, "tail is " + std::to_string(tail.size()) + " bytes; the header says " +
                                     std::to_string(want_tail) + " (trailer and chunk table)");
  std::string_view trailer_bytes = tail.substr(0, pack::kTrailerSize);
  pack::Trailer t;
  CM_RETURN_IF_ERROR(pack::DecodeTrailer(trailer_bytes, &t));
  if (pack::TrailerHash(trailer_bytes) != h.trailer_hash) return Error(Code::kCorrupt, "trailer hash mismatch");
  std::string_view table = tail.substr(pack::kTrailerSize);
  if (HashBytes(table.data(), table.size()) != h.table_hash)
    return Error(Code::kCorrupt, "chunk table hash mismatch");
  if (!pack::DecodeChunkTable(table, &p.hashes_)) return Error(Code::kCorrupt, "malformed chunk table");

  const bool signed_flag = h.flags & pack::kFlagSigned;
  if (!signed_flag && (!AllZero(t.signature.data(), t.signature.size()) || !AllZero(h.key_id.data(), 8)))
    return Error(Code::kCorrupt, "unsigned assignment carries signature bytes");
  if (key_or_null) {
    if (!signed_flag) return Error(Code::kAuth, "assignment is not signed, but a public key is configured");
    if (h.key_id != key_or_null->Id())
      return Error(Code::kAuth, "signed with another key (key id " + ToHex(h.key_id.data(), 8) + ", expected " +
                                    ToHex(key_or_null->Id().data(), 8) + ")");
    std::string msg = pack::SignedMessage(header256, trailer_bytes);
    InitCrypto();
    if (crypto_sign_verify_detached(t.signature.data(), reinterpret_cast<const unsigned char*>(msg.data()),
                                    msg.size(), key_or_null->bytes.data()) != 0)
      return Error(Code::kAuth, "bad signature");
    p.signature_checked_ = true;
  }
  p.header_bytes_.assign(header256);
  p.trailer_bytes_.assign(trailer_bytes);
  return p;
}

}  // namespace cm::push
