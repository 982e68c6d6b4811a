#include "pack/rehash.h"

#include <cstring>

#include "pack/assignment_format.h"

namespace cm::pack {
namespace {
template <typename T>
T Get(const std::string& f, size_t at) {
  T v;
  std::memcpy(&v, f.data() + at, sizeof v);
  return v;
}
template <typename T>
void Put(std::string* f, size_t at, T v) {
  std::memcpy(f->data() + at, &v, sizeof v);
}
void PutHash(std::string* f, size_t at, const Hash256& h) { std::memcpy(f->data() + at, h.data(), h.size()); }
Hash256 HashOf(const std::string& f, uint64_t at, uint64_t n) { return HashBytes(f.data() + at, n); }
}  // namespace

void RehashForFuzzing(std::string* f) {
  if (f->size() < kHeaderSize + kTrailerSize) return;
  const uint32_t chunk_size = Get<uint32_t>(*f, 136);
  const bool chunked = (static_cast<uint8_t>((*f)[9]) & kFlagChunkTable) && IsValidChunkSize(chunk_size);
  // covered + 32 * ChunkCountFor(covered) must fill the payload; some payload
  // sizes have no solution, so grow the file until one does.
  uint64_t covered = 0, count = 0;
  for (;;) {
    const uint64_t payload = f->size() - kHeaderSize - kTrailerSize;
    if (!chunked) {
      covered = payload;
      break;
    }
    bool found = false;
    for (uint64_t n = payload / (chunk_size + kChunkHashSize); n <= payload / (chunk_size + kChunkHashSize) + 2; ++n) {
      if (n * kChunkHashSize > payload) break;
      if (ChunkCountFor(payload - n * kChunkHashSize, chunk_size) == n) {
        covered = payload - n * kChunkHashSize;
        count = n;
        found = true;
        break;
      }
    }
    if (found) break;
    f->push_back('\0');
  }
  uint64_t data_size = Get<uint64_t>(*f, 64);
  if (data_size > covered) data_size = covered / 2;
  const uint64_t body_size = covered - data_size;
  Put<uint64_t>(f, 64, data_size);
  Put<uint64_t>(f, 72, body_size);
  PutHash(f, 96, HashOf(*f, kHeaderSize, data_size));
  const uint64_t trailer = kHeaderSize + covered;
  PutHash(f, trailer + 8, HashOf(*f, kHeaderSize + data_size, body_size));
  if (chunked) {
    ChunkHasher chunks(chunk_size);
    chunks.Update(f->data() + kHeaderSize, covered);
    chunks.Finish();
    std::string table = EncodeChunkTable(chunks.completed());
    std::memcpy(f->data() + trailer + kTrailerSize, table.data(), table.size());
    Put<uint32_t>(f, 140, static_cast<uint32_t>(count));
    PutHash(f, 144, HashBytes(table.data(), table.size()));
    PutHash(f, 176, TrailerHash(std::string_view(*f).substr(trailer, kTrailerSize)));
  }
  PutHash(f, kHeaderHashedSize, HashOf(*f, 0, kHeaderHashedSize));
}

}  // namespace cm::pack
