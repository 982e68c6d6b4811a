// Reed-Solomon erasure code over one block of frames (ISA-L, GF(2^8), Cauchy
// matrix). A block has k data symbols (esi 0..k-1) and up to kMaxSymbols - k
// parity symbols (esi k..254); any k distinct symbols rebuild the block, so
// one parity frame repairs a different loss at every receiver.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cm::mcast {

constexpr int kMaxSymbols = 255;  // data + parity per block
constexpr int kMaxBlockK = 128;   // data symbols per block

class RsCode {
 public:
  // k in [1, kMaxBlockK].
  explicit RsCode(int k);
  int k() const { return k_; }

  // Parity symbol esi (k <= esi < kMaxSymbols) of `data` (k pointers to
  // `len` bytes each) into out (len bytes).
  void Encode(int esi, const uint8_t* const* data, size_t len, uint8_t* out) const;
  // Several parity symbols in one pass over the data (ISA-L reads the k
  // inputs once per group of output rows): esis[i] into outs[i].
  void EncodeMany(const std::vector<int>& esis, const uint8_t* const* data, size_t len, uint8_t* const* outs) const;

  // Rebuilds every data symbol from k distinct symbols. esis[i] names
  // symbols[i]; data[j] (j < k) receives data symbol j (may alias a symbol
  // buffer when that symbol is the data symbol itself). False when the esis
  // are not k distinct valid indices.
  bool Decode(const std::vector<int>& esis, const std::vector<const uint8_t*>& symbols, size_t len,
              const std::vector<uint8_t*>& data) const;

 private:
  int k_;
  std::vector<uint8_t> matrix_;  // kMaxSymbols x k generator (identity on top)
};

}  // namespace cm::mcast
