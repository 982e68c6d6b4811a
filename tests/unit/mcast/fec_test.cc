#include "mcast/fec.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <random>

namespace cm::mcast {
namespace {

// Any k of the k + m symbols rebuild the block.
RC_GTEST_PROP(RsCode, AnyKSymbolsRebuildTheBlock, ()) {
  int k = *rc::gen::inRange(1, kMaxBlockK + 1);
  size_t len = *rc::gen::inRange<size_t>(1, 200);
  uint64_t seed = *rc::gen::arbitrary<uint64_t>();
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint8_t>> data(k, std::vector<uint8_t>(len));
  for (auto& d : data)
    for (auto& b : d) b = static_cast<uint8_t>(rng());
  std::vector<const uint8_t*> dp;
  for (auto& d : data) dp.push_back(d.data());
  std::vector<int> all(kMaxSymbols);
  for (int i = 0; i < kMaxSymbols; ++i) all[i] = i;
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(k);
  RsCode code(k);
  std::vector<std::vector<uint8_t>> syms(k, std::vector<uint8_t>(len));
  for (int i = 0; i < k; ++i) {
    if (all[i] < k)
      syms[i] = data[all[i]];
    else
      code.Encode(all[i], dp.data(), len, syms[i].data());
  }
  std::vector<const uint8_t*> sp;
  for (auto& s : syms) sp.push_back(s.data());
  std::vector<std::vector<uint8_t>> out(k, std::vector<uint8_t>(len));
  std::vector<uint8_t*> op;
  for (auto& o : out) op.push_back(o.data());
  RC_ASSERT(code.Decode(all, sp, len, op));
  RC_ASSERT(out == data);
}

TEST(RsCode, DuplicateSymbolsAreRefused) {
  RsCode code(2);
  uint8_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, o1[4], o2[4];
  EXPECT_FALSE(code.Decode({3, 3}, {a, b}, 4, {o1, o2}));
  EXPECT_FALSE(code.Decode({3, 255}, {a, b}, 4, {o1, o2}));
}

}  // namespace
}  // namespace cm::mcast

namespace cm::mcast {
namespace {

TEST(RsCode, EncodeManyMatchesOneAtATime) {
  const int k = 40;
  const size_t len = 100;
  RsCode code(k);
  std::vector<std::vector<uint8_t>> data(k, std::vector<uint8_t>(len));
  for (int i = 0; i < k; ++i)
    for (size_t j = 0; j < len; ++j) data[i][j] = static_cast<uint8_t>(i * 31 + j * 7 + 1);
  std::vector<const uint8_t*> ptrs;
  for (auto& d : data) ptrs.push_back(d.data());
  std::vector<int> esis = {k, k + 5, 254, 200, k + 1};
  std::vector<std::vector<uint8_t>> many(esis.size(), std::vector<uint8_t>(len));
  std::vector<uint8_t*> outs;
  for (auto& m : many) outs.push_back(m.data());
  code.EncodeMany(esis, ptrs.data(), len, outs.data());
  for (size_t i = 0; i < esis.size(); ++i) {
    std::vector<uint8_t> one(len);
    code.Encode(esis[i], ptrs.data(), len, one.data());
    EXPECT_EQ(one, many[i]) << esis[i];
  }
}

}  // namespace
}  // namespace cm::mcast
