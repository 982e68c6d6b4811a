#include "pack/chunk_table.h"

#include <algorithm>
#include <cstring>

namespace cm::pack {

bool IsValidChunkSize(uint64_t s) {
  return s >= kMinChunkSize && s <= kMaxChunkSize && (s & (s - 1)) == 0;
}

Status CheckChunkSizeOption(uint64_t s) {
  if (s == 0 || IsValidChunkSize(s)) return Status::Ok();
  return Error(Code::kUsage,
               "chunk size must be 0 (no chunk table) or a power of two from 64K to 64M, not " + std::to_string(s));
}

uint64_t ChunkCountFor(uint64_t covered, uint64_t chunk_size) {
  return covered / chunk_size + (covered % chunk_size != 0 ? 1 : 0);
}

void ChunkHasher::Update(const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    size_t take = static_cast<size_t>(std::min<uint64_t>(n, chunk_size_ - in_chunk_));
    hasher_.Update(c, take);
    in_chunk_ += take;
    c += take;
    n -= take;
    if (in_chunk_ == chunk_size_) {
      completed_.push_back(hasher_.Finish());
      ++chunks_;
      hasher_ = Hasher();
      in_chunk_ = 0;
    }
  }
}

void ChunkHasher::Finish() {
  if (in_chunk_ == 0) return;
  completed_.push_back(hasher_.Finish());
  ++chunks_;
  hasher_ = Hasher();
  in_chunk_ = 0;
}

std::string EncodeChunkTable(const std::vector<Hash256>& hashes) {
  std::string out;
  out.reserve(hashes.size() * kChunkHashSize);
  for (const Hash256& h : hashes) out.append(reinterpret_cast<const char*>(h.data()), h.size());
  return out;
}

bool DecodeChunkTable(std::string_view bytes, std::vector<Hash256>* hashes) {
  if (bytes.size() % kChunkHashSize != 0) return false;
  hashes->resize(bytes.size() / kChunkHashSize);
  for (size_t i = 0; i < hashes->size(); ++i)
    std::memcpy((*hashes)[i].data(), bytes.data() + i * kChunkHashSize, kChunkHashSize);
  return true;
}

}  // namespace cm::pack
