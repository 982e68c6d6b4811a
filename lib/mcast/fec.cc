#include "mcast/fec.h"

#include <isa-l/erasure_code.h>

#include <cstring>

namespace cm::mcast {

RsCode::RsCode(int k) : k_(k), matrix_(static_cast<size_t>(kMaxSymbols) * k) {
  gf_gen_cauchy1_matrix(matrix_.data(), kMaxSymbols, k);
}

void RsCode::Encode(int esi, const uint8_t* const* data, size_t len, uint8_t* out) const {
  std::vector<uint8_t> tables(32 * static_cast<size_t>(k_));
  ec_init_tables(k_, 1, const_cast<uint8_t*>(&matrix_[static_cast<size_t>(esi) * k_]), tables.data());
  uint8_t* outs[1] = {out};
  ec_encode_data(static_cast<int>(len), k_, 1, tables.data(), const_cast<uint8_t**>(data), outs);
}

bool RsCode::Decode(const std::vector<int>& esis, const std::vector<const uint8_t*>& symbols, size_t len,
                    const std::vector<uint8_t*>& data) const {
  if (esis.size() != static_cast<size_t>(k_) || symbols.size() != esis.size() || data.size() != esis.size())
    return false;
  std::vector<bool> seen(kMaxSymbols, false);
  for (int e : esis) {
    if (e < 0 || e >= kMaxSymbols || seen[e]) return false;
    seen[e] = true;
  }
  // Data symbols we hold are copied; the others are rebuilt from the inverse
  // of the k x k submatrix of the rows we received.
  std::vector<int> missing;
  for (int j = 0; j < k_; ++j)
    if (!seen[j]) missing.push_back(j);
  for (size_t i = 0; i < esis.size(); ++i)
    if (esis[i] < k_ && data[esis[i]] != symbols[i]) std::memmove(data[esis[i]], symbols[i], len);
  if (missing.empty()) return true;
  const size_t k = static_cast<size_t>(k_);
  std::vector<uint8_t> sub(k * k), inv(k * k);
  for (size_t i = 0; i < k; ++i) std::memcpy(&sub[i * k], &matrix_[static_cast<size_t>(esis[i]) * k], k);
  if (gf_invert_matrix(sub.data(), inv.data(), k_) != 0) return false;
  std::vector<uint8_t> rows(missing.size() * k);
  for (size_t m = 0; m < missing.size(); ++m) std::memcpy(&rows[m * k], &inv[static_cast<size_t>(missing[m]) * k], k);
  std::vector<uint8_t> tables(32 * k * missing.size());
  ec_init_tables(k_, static_cast<int>(missing.size()), rows.data(), tables.data());
  // Inputs must not alias outputs: rebuilt rows go to scratch first.
  std::vector<uint8_t> scratch(missing.size() * len);
  std::vector<uint8_t*> outs(missing.size());
  for (size_t m = 0; m < missing.size(); ++m) outs[m] = &scratch[m * len];
  ec_encode_data(static_cast<int>(len), k_, static_cast<int>(missing.size()), tables.data(),
                 const_cast<uint8_t**>(symbols.data()), outs.data());
  for (size_t m = 0; m < missing.size(); ++m) std::memcpy(data[missing[m]], outs[m], len);
  return true;
}

}  // namespace cm::mcast
