// libFuzzer target for the job chunk records (lib/push/job_chunk.h): what a
// node reads from another node's socket before it appends or serves a chunk.
// Build with -DCM_FUZZ=ON and clang; run:
//   build-fuzz/fuzz/job_chunk_fuzz corpus/ -max_total_time=60
// The first byte picks the mode: odd, the rest is a raw byte stream of
// records; even, the rest is edits (position, value) applied to a genuine
// signed item of four records. The stream is split with NextChunkRecordSize
// and checked with a ChunkVerifier, as the edge does. Properties: no crash;
// a split never asks past kMaxChunkRecord; a header that parses re-encodes
// to the same 256 bytes; a refused record leaves the verifier where it was
// and names kCorrupt, kAuth or kOrder; an accepted record is exactly the
// genuine record at that place (no forgery, reordering or splice gets
// through), also when the verifier is rebuilt from its saved cursor.
#include <sodium.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "push/job_chunk.h"

namespace {

using namespace cm::push;

constexpr char kJob[] = "fuzz-job";
constexpr uint32_t kItem = 3;

struct Genuine {
  cm::pack::SigningKey key;
  std::vector<std::string> records;
  std::string stream;  // the records, concatenated
};

const Genuine& TheItem() {
  static const Genuine g = [] {
    Genuine g;
    cm::InitCrypto();
    unsigned char seed[32];
    for (int i = 0; i < 32; ++i) seed[i] = static_cast<unsigned char>(0x5a + i);
    crypto_sign_seed_keypair(g.key.pub.bytes.data(), g.key.secret.data(), seed);
    auto s = ChunkSigner::Create(g.key, kJob, kItem);
    if (!s.ok()) std::abort();
    for (const std::string& p : {std::string("a"), std::string(300, 'b'), std::string("cc")}) {
      auto r = s->Append(p);
      if (!r.ok()) std::abort();
      g.records.push_back(*r);
    }
    auto end = s->End("tail");
    if (!end.ok()) std::abort();
    g.records.push_back(*end);
    for (const auto& r : g.records) g.stream += r;
    return g;
  }();
  return g;
}

std::string Edited(const std::string& base, const uint8_t* e, size_t n) {
  std::string s = base;
  for (size_t i = 0; i + 2 < n; i += 3) {
    const size_t at = (e[i] | static_cast<size_t>(e[i + 1]) << 8) % (s.size() + 1);
    const uint8_t v = e[i + 2];
    switch (v % 4) {
      case 0:
        if (at < s.size()) s[at] = static_cast<char>(s[at] ^ (v | 1));
        break;
      case 1: s.resize(at); break;
      case 2:
        if (at < s.size()) s.erase(at, 1 + v % 64);
        break;
      case 3: s.insert(at, std::string(1 + v % 8, static_cast<char>(v))); break;
    }
  }
  return s;
}

}  // namespace

// Exposed for the unit test that runs it on random mutations. Returns 1
// when the whole genuine item was accepted, else 0.
int CmFuzzJobChunk(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Genuine& g = TheItem();
  const std::string stream = (data[0] & 1) ? std::string(reinterpret_cast<const char*>(data) + 1, size - 1)
                                           : Edited(g.stream, data + 1, size - 1);
  ChunkVerifier v(g.key.pub, kJob, kItem);
  size_t accepted = 0;
  std::string_view rest(stream);
  while (!rest.empty()) {
    auto n = NextChunkRecordSize(rest);
    if (!n.ok()) {
      if (n.status().code() != cm::Code::kCorrupt || ParseChunkHeader(rest).ok()) std::abort();
      break;
    }
    if (*n == 0) {  // needs more: only while the header or payload is short
      auto h = ParseChunkHeader(rest);
      if (h.ok() && h->record_size() <= rest.size()) std::abort();
      break;
    }
    if (*n < kChunkHeaderSize || *n > kMaxChunkRecord || *n > rest.size()) std::abort();
    auto h = ParseChunkHeader(rest);
    if (!h.ok() || h->record_size() != *n || EncodeChunkHeader(*h) != rest.substr(0, kChunkHeaderSize)) std::abort();
    const std::string_view record = rest.substr(0, *n);
    const ChunkCursor before = v.cursor();
    cm::Status st = v.Check(record);
    if (st.ok()) {
      if (accepted >= g.records.size() || record != g.records[accepted]) std::abort();
      ++accepted;
      // Resume from the saved cursor every other record, as after a restart.
      if (accepted % 2 == 0) v = ChunkVerifier(g.key.pub, kJob, kItem, v.cursor());
    } else {
      const cm::Code c = st.code();
      if ((c != cm::Code::kCorrupt && c != cm::Code::kAuth && c != cm::Code::kOrder) || !(v.cursor() == before))
        std::abort();
    }
    rest.remove_prefix(*n);
  }
  return accepted == g.records.size() ? 1 : 0;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzJobChunk(data, size);
  return 0;
}
#endif
