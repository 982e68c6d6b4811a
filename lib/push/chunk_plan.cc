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

Result<HeadAndTail> BoundedHeadAndTailRanges(std::string_view header256, const PlanLimits& limits) {
  CM_ASSIGN_OR_RETURN(HeadAndTail r, HeadAndTailRanges(header256));
  if (r.chunk_count() > limits.max_chunk_count)
    return Error(Code::kCorrupt, "header declares " + std::to_string(r.chunk_count()) + " chunks (a chunk table of " +
                                     std::to_string(r.table().size()) + " bytes); at most " +
                                     std::to_string(limits.max_chunk_count) + " accepted");
  if (r.file_size() > limits.max_file_size)
    return Error(Code::kCorrupt, "header declares a file of " + std::to_string(r.file_size()) + " bytes; at most " +
                                     std::to_string(limits.max_file_size) + " accepted");
  return r;
}

Status CheckSignature(std::string_view header256, std::string_view trailer_bytes, const pack::PublicKey* key_or_null) {
  Header h;
  CM_RETURN_IF_ERROR(DecodeChunkedHeader(header256, &h));
  pack::Trailer t;
  CM_RETURN_IF_ERROR(pack::DecodeTrailer(trailer_bytes, &t));
  if (pack::TrailerHash(trailer_bytes) != h.trailer_hash) return Error(Code::kCorrupt, "trailer hash mismatch");
  const bool signed_flag = h.flags & pack::kFlagSigned;
  if (!signed_flag && (!AllZero(t.signature.data(), t.signature.size()) || !AllZero(h.key_id.data(), 8)))
    return Error(Code::kCorrupt, "unsigned assignment carries signature bytes");
  if (!key_or_null) return Status::Ok();
  if (!signed_flag) return Error(Code::kAuth, "assignment is not signed, but a public key is configured");
  if (h.key_id != key_or_null->Id())
    return Error(Code::kAuth, "signed with another key (key id " + ToHex(h.key_id.data(), 8) + ", expected " +
                                  ToHex(key_or_null->Id().data(), 8) + ")");
  std::string msg = pack::SignedMessage(header256, trailer_bytes);
  InitCrypto();
  if (crypto_sign_verify_detached(t.signature.data(), reinterpret_cast<const unsigned char*>(msg.data()), msg.size(),
                                  key_or_null->bytes.data()) != 0)
    return Error(Code::kAuth, "bad signature");
  return Status::Ok();
}

Result<LoadedPlan> LoadChunkPlan(const RangeReader& read, const pack::PublicKey* key_or_null,
                                 const PlanLimits& limits, const std::function<Status(const HeadAndTail&)>& admit) {
  auto exact = [&](const ByteRange& r, const char* what) -> Result<std::string> {
    if (r.size() == 0) return std::string();  // no chunks (a control assignment): nothing to read
    CM_ASSIGN_OR_RETURN(std::string b, read(r));
    if (b.size() != r.size())
      return Error(Code::kCorrupt, std::string(what) + ": " + std::to_string(b.size()) + " bytes where " +
                                       std::to_string(r.size()) + " were asked for");
    return b;
  };
  LoadedPlan out;
  CM_ASSIGN_OR_RETURN(out.header, exact({0, pack::kHeaderSize}, "header"));
  CM_ASSIGN_OR_RETURN(HeadAndTail r, BoundedHeadAndTailRanges(out.header, limits));
  if (admit) CM_RETURN_IF_ERROR(admit(r));
  if (key_or_null) {
    CM_ASSIGN_OR_RETURN(std::string trailer, exact(r.trailer(), "trailer"));
    CM_RETURN_IF_ERROR(CheckSignature(out.header, trailer, key_or_null));
    CM_ASSIGN_OR_RETURN(std::string table, exact(r.table(), "chunk table"));
    out.tail.reserve(trailer.size() + table.size());
    out.tail.append(trailer).append(table);
  } else {
    CM_ASSIGN_OR_RETURN(out.tail, exact(r.tail, "tail"));
  }
  CM_ASSIGN_OR_RETURN(out.plan, ParseChunkPlan(out.header, out.tail, key_or_null));
  return out;
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
  // The signature (over header and trailer) before the table is decoded.
  std::string_view trailer_bytes = tail.substr(0, pack::kTrailerSize);
  CM_RETURN_IF_ERROR(CheckSignature(header256, trailer_bytes, key_or_null));
  std::string_view table = tail.substr(pack::kTrailerSize);
  if (HashBytes(table.data(), table.size()) != h.table_hash)
    return Error(Code::kCorrupt, "chunk table hash mismatch");
  if (!pack::DecodeChunkTable(table, &p.hashes_)) return Error(Code::kCorrupt, "malformed chunk table");
  p.signature_checked_ = key_or_null != nullptr;
  p.header_bytes_.assign(header256);
  p.trailer_bytes_.assign(trailer_bytes);
  return p;
}

}  // namespace cm::push
