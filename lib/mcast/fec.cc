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

void RsCode::EncodeMany(const std::vector<int>& esis, const uint8_t* const* data, size_t len,
                        uint8_t* const* outs) const {
  const size_t k = static_cast<size_t>(k_), n = esis.size();
  if (n == 0) return;
  std::vector<uint8_t> rows(n * k), tables(32 * k * n);
  for (size_t r = 0; r < n; ++r) std::memcpy(&rows[r * k], &matrix_[static_cast<size_t>(esis[r]) * k], k);
  ec_init_tables(k_, static_cast<int>(n), rows.data(), tables.data());
  ec_encode_data(static_cast<int>(len), k_, static_cast<int>(n), tables.data(), const_cast<uint8_t**>(data),
                 const_cast<uint8_t**>(outs));
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
  // Data symbols we hold are copied. The m missing ones come from the m
  // parity symbols: with A the parity rows, D the data we hold and M the
  // missing columns, A[P][M] x = p - A[P][D] d. Only the m x m submatrix is
  // inverted (any square submatrix of a Cauchy matrix is invertible), so a
  // block missing a tenth of its frames costs m^3 instead of k^3.
  std::vector<int> missing;
  for (int j = 0; j < k_; ++j)
    if (!seen[j]) missing.push_back(j);
  std::vector<const uint8_t*> have_data, parity;
  std::vector<int> have_cols, parity_rows;
  for (size_t i = 0; i < esis.size(); ++i) {
    if (esis[i] < k_) {
      if (data[esis[i]] != symbols[i]) std::memmove(data[esis[i]], symbols[i], len);
      have_data.push_back(symbols[i]);
      have_cols.push_back(esis[i]);
    } else {
      parity.push_back(symbols[i]);
      parity_rows.push_back(esis[i]);
    }
  }
  const size_t m = missing.size();
  if (m == 0) return true;
  if (parity.size() != m) return false;
  const size_t k = static_cast<size_t>(k_);
  auto coef = [&](int row, int col) { return matrix_[static_cast<size_t>(row) * k + static_cast<size_t>(col)]; };
  // Syndromes: s = p - A[P][D] d (subtraction is XOR in GF(2^8)).
  std::vector<uint8_t> syn(m * len);
  for (size_t r = 0; r < m; ++r) std::memcpy(&syn[r * len], parity[r], len);
  const size_t nd = have_data.size();
  if (nd > 0) {
    std::vector<uint8_t> rows(m * nd), tables(32 * m * nd), part(m * len);
    for (size_t r = 0; r < m; ++r)
      for (size_t c = 0; c < nd; ++c) rows[r * nd + c] = coef(parity_rows[r], have_cols[c]);
    ec_init_tables(static_cast<int>(nd), static_cast<int>(m), rows.data(), tables.data());
    std::vector<uint8_t*> outs(m);
    for (size_t r = 0; r < m; ++r) outs[r] = &part[r * len];
    ec_encode_data(static_cast<int>(len), static_cast<int>(nd), static_cast<int>(m), tables.data(),
                   const_cast<uint8_t**>(have_data.data()), outs.data());
    for (size_t i = 0; i < m * len; ++i) syn[i] ^= part[i];
  }
  std::vector<uint8_t> sub(m * m), inv(m * m);
  for (size_t r = 0; r < m; ++r)
    for (size_t c = 0; c < m; ++c) sub[r * m + c] = coef(parity_rows[r], missing[c]);
  if (gf_invert_matrix(sub.data(), inv.data(), static_cast<int>(m)) != 0) return false;
  std::vector<uint8_t> tables(32 * m * m);
  ec_init_tables(static_cast<int>(m), static_cast<int>(m), inv.data(), tables.data());
  std::vector<uint8_t*> ins(m), outs(m);
  for (size_t r = 0; r < m; ++r) {
    ins[r] = &syn[r * len];
    outs[r] = data[missing[r]];
  }
  ec_encode_data(static_cast<int>(len), static_cast<int>(m), static_cast<int>(m), tables.data(), ins.data(),
                 outs.data());
  return true;
}

}  // namespace cm::mcast
