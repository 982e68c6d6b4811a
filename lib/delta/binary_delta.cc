#include "delta/binary_delta.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

namespace cm::delta {
namespace {

// Polynomial rolling hash over a window of W bytes, mod 2^64:
//   h(q) = sum_{i<W} new[q+i] * K^(W-1-i)
// Rolling one byte costs two multiplies; the high bits are well mixed, so
// the table slot comes from the top bits of a second multiply.
constexpr uint64_t kHashMul = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMix = 0xD6E8FEB86659FD93ull;

constexpr uint32_t kMaxWindow = 32;
// Indexed positions kept per window hash, and slots looked at per lookup.
// Small files (repetitive text) keep many duplicates so that the one that
// continues the right alignment is among them; big files keep few so runs of
// identical blocks stay cheap.
constexpr int kMaxSameHashSmall = 32, kMaxProbeSmall = 48;
constexpr int kMaxSameHashBig = 4, kMaxProbeBig = 16;
constexpr uint64_t kSmallIndexBlocks = 1u << 17;
constexpr int kBatch = 32;           // scan positions hashed and prefetched together
constexpr uint64_t kTargetBlocks = 1u << 21;  // default index size ~2M windows
constexpr uint64_t kNearCopy = 256;        // bytes from the previous copy's end
constexpr uint64_t kMinFarCopyText = 128;  // shortest far copy in compressible data

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Length of the common prefix of a and b, at most n.
inline uint64_t MatchForward(const uint8_t* a, const uint8_t* b, uint64_t n) {
  uint64_t i = 0;
  while (i + 32 <= n) {
    uint64_t x0 = Load64(a + i) ^ Load64(b + i);
    uint64_t x1 = Load64(a + i + 8) ^ Load64(b + i + 8);
    uint64_t x2 = Load64(a + i + 16) ^ Load64(b + i + 16);
    uint64_t x3 = Load64(a + i + 24) ^ Load64(b + i + 24);
    if ((x0 | x1 | x2 | x3) != 0) break;
    i += 32;
  }
  while (i + 8 <= n) {
    uint64_t x = Load64(a + i) ^ Load64(b + i);
    if (x != 0) return i + static_cast<uint64_t>(std::countr_zero(x) >> 3);
    i += 8;
  }
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Length of the common suffix of a[-n, 0) and b[-n, 0), at most n.
inline uint64_t MatchBackward(const uint8_t* a, const uint8_t* b, uint64_t n) {
  uint64_t i = 0;
  while (i + 8 <= n) {
    uint64_t x = Load64(a - i - 8) ^ Load64(b - i - 8);
    if (x != 0) return i + static_cast<uint64_t>(std::countl_zero(x) >> 3);
    i += 8;
  }
  while (i < n && a[-1 - static_cast<int64_t>(i)] == b[-1 - static_cast<int64_t>(i)]) ++i;
  return i;
}

struct Slot {
  uint32_t check;  // other bits of the hash, to skip most false candidates
  uint32_t block;  // block index + 1; 0 = empty
};

class Matcher {
 public:
  Matcher(const uint8_t* old_data, uint64_t old_size, uint32_t block, uint32_t window,
          uint64_t slots)
      : old_(old_data), old_size_(old_size), block_(block), window_(window),
        mask_(slots - 1), bits_(std::countr_zero(slots)), table_(new Slot[slots]()) {
    bool small = old_size / block <= kSmallIndexBlocks;
    max_same_ = small ? kMaxSameHashSmall : kMaxSameHashBig;
    max_probe_ = small ? kMaxProbeSmall : kMaxProbeBig;
    uint64_t k = 1;
    for (uint32_t i = window_; i-- > 0;) {
      pow_[i] = k;  // K^(W-1-i)
      k *= kHashMul;
    }
    kw_ = pow_[0];
  }

  uint32_t window() const { return window_; }

  // Independent products rather than Horner's rule: no chain of dependent
  // multiplies, so indexing the old file runs at multiply throughput.
  uint64_t Hash(const uint8_t* p) const {
    uint64_t h0 = 0, h1 = 0, h2 = 0, h3 = 0;
    uint32_t i = 0;
    for (; i + 4 <= window_; i += 4) {
      h0 += p[i] * pow_[i];
      h1 += p[i + 1] * pow_[i + 1];
      h2 += p[i + 2] * pow_[i + 2];
      h3 += p[i + 3] * pow_[i + 3];
    }
    for (; i < window_; ++i) h0 += p[i] * pow_[i];
    return h0 + h1 + h2 + h3;
  }
  uint64_t Roll(uint64_t h, uint8_t out, uint8_t in) const { return (h - out * kw_) * kHashMul + in; }
  uint64_t SlotOf(uint64_t h) const { return (h * kMix) >> (64 - bits_); }
  static uint32_t CheckOf(uint64_t h) { return static_cast<uint32_t>(h >> 32) | 1; }
  void Prefetch(uint64_t h) const { __builtin_prefetch(&table_[SlotOf(h)]); }

  void BuildIndex() {
    if (old_size_ < window_) return;
    uint64_t nblocks = (old_size_ - window_) / block_ + 1;
    uint64_t hs[kBatch];
    for (uint64_t k = 0; k < nblocks; k += kBatch) {
      uint64_t n = std::min<uint64_t>(kBatch, nblocks - k);
      for (uint64_t i = 0; i < n; ++i) {
        hs[i] = Hash(old_ + (k + i) * block_);
        Prefetch(hs[i]);
      }
      for (uint64_t i = 0; i < n; ++i) Insert(hs[i], static_cast<uint32_t>(k + i));
    }
  }

  // Finds the longest verified match for the window at new_data[q], extended
  // backwards no further than lit_start. Returns its length (0 if none).
  uint64_t Find(uint64_t h, const uint8_t* nd, uint64_t new_size, uint64_t q, uint64_t lit_start,
                uint64_t prev_end, uint64_t* old_pos, uint64_t* new_pos) const {
    uint32_t check = CheckOf(h);
    uint64_t s = SlotOf(h);
    uint64_t best = 0;
    for (int probe = 0; probe < max_probe_; ++probe, s = (s + 1) & mask_) {
      const Slot& e = table_[s];
      if (e.block == 0) break;
      if (e.check != check) continue;
      uint64_t o = static_cast<uint64_t>(e.block - 1) * block_;
      if (std::memcmp(old_ + o, nd + q, window_) != 0) continue;
      uint64_t fwd = window_ + MatchForward(old_ + o + window_, nd + q + window_,
                                            std::min(old_size_ - o, new_size - q) - window_);
      uint64_t back = MatchBackward(old_ + o, nd + q, std::min(o, q - lit_start));
      uint64_t len = fwd + back;
      uint64_t start = o - back;
      if (len > best || (len == best && Distance(start, prev_end) < Distance(*old_pos, prev_end))) {
        best = len;
        *old_pos = start;
        *new_pos = q - back;
      }
    }
    return best;
  }

 private:
  static uint64_t Distance(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

  void Insert(uint64_t h, uint32_t block) {
    uint32_t check = CheckOf(h);
    uint64_t s = SlotOf(h);
    int same = 0;
    for (int probe = 0; probe <= static_cast<int>(mask_); ++probe, s = (s + 1) & mask_) {
      Slot& e = table_[s];
      if (e.block == 0) {
        e.check = check;
        e.block = block + 1;
        return;
      }
      // Keep the earliest few positions of a repeated window: enough to pick
      // a good one, bounded so runs of identical blocks stay cheap.
      if (e.check == check && ++same >= max_same_) return;
      if (probe >= max_probe_) return;  // crowded neighbourhood; drop this one
    }
  }

  const uint8_t* old_;
  uint64_t old_size_;
  uint32_t block_, window_;
  int max_same_ = 0, max_probe_ = 0;
  uint64_t mask_;
  int bits_;
  std::unique_ptr<Slot[]> table_;
  uint64_t pow_[kMaxWindow] = {};
  uint64_t kw_;
};

// Encoded size of an INSERT of n bytes (0 for none).
uint64_t LiteralCost(uint64_t n) {
  if (n == 0) return 0;
  uint64_t c = 2 + n;
  for (uint64_t v = n; v >= 0x80; v >>= 7) ++c;
  return c;
}

struct Plan {
  uint32_t block = 0;
  uint32_t window = 0;
  uint64_t slots = 0;
};

Plan ChoosePlan(uint64_t old_size, const DeltaOptions& opts) {
  Plan p;
  uint64_t block;
  if (opts.block_size != 0) {
    block = std::max<uint32_t>(opts.block_size, 4);
  } else if (old_size <= (8u << 20)) {
    // Text-sized files: catch short unchanged runs between edits (on release
    // pairs of source trees, 8-byte blocks gave 8% smaller assignments than
    // the 16-64 bytes the size alone would choose; the index stays <= 32 MiB).
    block = 8;
  } else {
    block = std::max<uint64_t>(16, std::bit_ceil((old_size + kTargetBlocks - 1) / kTargetBlocks));
  }
  for (;;) {
    // Block indices are stored in 32 bits.
    while (old_size / block >= UINT32_MAX - 1) block *= 2;
    uint64_t nblocks = old_size / block + 1;
    uint64_t slots = std::max<uint64_t>(64, std::bit_ceil(nblocks * 2));
    if (slots * sizeof(Slot) <= opts.max_index_bytes || slots == 64 || block >= (1u << 30)) {
      p.block = static_cast<uint32_t>(block);
      p.slots = slots;
      break;
    }
    block *= 2;
  }
  p.window = std::min<uint32_t>(p.block, kMaxWindow);
  return p;
}

class Emitter {
 public:
  Emitter(InstructionWriter* out, DeltaStats* stats) : out_(out), stats_(stats) {}
  Status Literal(const uint8_t* p, uint64_t n) {
    if (n == 0) return Status::Ok();
    stats_->inserted += n;
    return out_->Insert(p, n);
  }
  Status Copy(uint64_t off, uint64_t n) {
    stats_->copied += n;
    return out_->Copy(off, n);
  }

 private:
  InstructionWriter* out_;
  DeltaStats* stats_;
};

}  // namespace

Status ComputeDelta(const uint8_t* old_data, uint64_t old_size, const uint8_t* new_data,
                    uint64_t new_size, const DeltaOptions& opts, InstructionWriter* out,
                    DeltaStats* stats) {
  DeltaStats local;
  if (stats == nullptr) stats = &local;
  *stats = DeltaStats{};
  uint64_t base_out = out->output_size();
  Emitter em(out, stats);
  auto finish = [&]() -> Status {
    CM_RETURN_IF_ERROR(out->Finish());
    stats->stream_bytes = out->output_size() - base_out;
    return Status::Ok();
  };

  Plan plan = ChoosePlan(old_size, opts);
  const uint32_t w = plan.window;
  if (old_size < w || new_size < w) {
    // Too small to index: the only useful copy is the whole old file.
    if (old_size > 0 && old_size == new_size && std::memcmp(old_data, new_data, old_size) == 0) {
      CM_RETURN_IF_ERROR(em.Copy(0, old_size));
    } else {
      if (LiteralCost(new_size) + 1 > opts.max_stream_bytes) {
        stats->exceeded = true;
        return Status::Ok();
      }
      CM_RETURN_IF_ERROR(em.Literal(new_data, new_size));
    }
    return finish();
  }

  Matcher m(old_data, old_size, plan.block, w, plan.slots);
  m.BuildIndex();

  const uint64_t min_match = std::max<uint64_t>(w, 12);
  const uint64_t lazy_span = std::min<uint64_t>(plan.block + w, 256);
  const uint64_t lazy_below = std::max<uint64_t>(64, 2 * (plan.block + w));
  const uint64_t limit = opts.max_stream_bytes;
  const uint64_t probe_limit = opts.give_up_without_copy;
  uint64_t lit_start = 0;   // first byte of new not yet covered by an instruction
  uint64_t prev_end = 0;    // old offset just past the previous copy
  // A copy that continues near the previous one is worth it from a dozen
  // bytes. A jump elsewhere costs a long offset and splits the literal run;
  // when the data is compressible (text), cm-pack's zstd encodes a short
  // literal far better than a short far copy (which is mostly an accidental
  // repeat of common words or prefixes), so such a copy must be long.
  const uint64_t min_far = std::max<uint64_t>(w, LooksHighEntropy(new_data, new_size) ? 16 : kMinFarCopyText);
  const uint64_t near_dist = kNearCopy;
  auto enough = [&](uint64_t len, uint64_t off) {
    uint64_t d = off > prev_end ? off - prev_end : prev_end - off;
    return len >= (d <= near_dist ? min_match : min_far);
  };
  const uint64_t last = new_size - w;  // last window start
  // Window hashes are computed kAhead positions before they are looked up,
  // and their table slots prefetched, so the lookups rarely wait on memory.
  constexpr uint64_t kAhead = kBatch;
  uint64_t ring[2 * kBatch];
  constexpr uint64_t kRingMask = 2 * kBatch - 1;
  uint64_t p = 0;      // scan position: window at new_data[p, p+w)
  uint64_t ahead = 1;  // hashes known for [p, ahead)
  ring[0] = m.Hash(new_data);
  m.Prefetch(ring[0]);
  uint64_t next_check = 1 << 16;

  while (p <= last) {
    uint64_t stop = std::min(p + kAhead, last + 1);
    for (; ahead < stop; ++ahead) {
      uint64_t h = m.Roll(ring[(ahead - 1) & kRingMask], new_data[ahead - 1], new_data[ahead - 1 + w]);
      ring[ahead & kRingMask] = h;
      m.Prefetch(h);
    }
    uint64_t op = 0, np = 0;
    uint64_t len = m.Find(ring[p & kRingMask], new_data, new_size, p, lit_start, prev_end, &op, &np);
    bool good = len >= min_match && enough(len, op);
    if (good && len < lazy_below) {
      // A short match may be an accidental repeat hiding the real
      // continuation, which the index only finds at its next indexed window
      // (within block+window bytes) and which then extends backwards over
      // this one. Look there before settling.
      uint64_t h = ring[p & kRingMask];
      uint64_t end = std::min(last, p + lazy_span);
      for (uint64_t q = p + 1; q <= end; ++q) {
        h = m.Roll(h, new_data[q - 1], new_data[q - 1 + w]);
        uint64_t op2 = 0, np2 = 0;
        uint64_t len2 = m.Find(h, new_data, new_size, q, lit_start, prev_end, &op2, &np2);
        if (enough(len2, op2) && np2 <= np && np2 + len2 > np + len) {
          op = op2;
          np = np2;
          len = len2;
        }
      }
    }
    if (!good) {
      // A far match too short to take (an accidental repeat) is followed by
      // the same repeat at the next positions, each costing a full lookup.
      // Skipping part of it cannot hide a long enough far match: one that
      // starts in the skipped bytes extends past them by more than a block,
      // is found at its next indexed window and extended backwards.
      // Half of that, to still catch most short copies near the previous one.
      uint64_t skip = len > w + plan.block + 2 ? (len - w - plan.block) / 2 : 1;
      if (skip > 1) {
        p += skip;
        if (p > last) break;
        if (p >= ahead) {
          ring[p & kRingMask] = m.Hash(new_data + p);
          ahead = p + 1;
        }
      } else {
        ++p;
      }
      // Give up early when the literal alone already makes the stream too
      // big, or when a long prefix found nothing at all to copy.
      if (p >= next_check) {
        next_check = p + (1 << 16);
        if (out->output_size() - base_out + (p - lit_start) > limit ||
            (stats->copied == 0 && p >= probe_limit)) {
          stats->exceeded = true;
          return Status::Ok();
        }
      }
      continue;
    }
    CM_RETURN_IF_ERROR(em.Literal(new_data + lit_start, np - lit_start));
    CM_RETURN_IF_ERROR(em.Copy(op, len));
    prev_end = op + len;
    lit_start = np + len;
    p = lit_start;
    if (out->output_size() - base_out > limit) {
      stats->exceeded = true;
      return Status::Ok();
    }
    if (p > last) break;
    ring[p & kRingMask] = m.Hash(new_data + p);
    m.Prefetch(ring[p & kRingMask]);
    ahead = p + 1;
  }
  if (out->output_size() - base_out + LiteralCost(new_size - lit_start) + 1 > limit) {
    stats->exceeded = true;
    return Status::Ok();
  }
  CM_RETURN_IF_ERROR(em.Literal(new_data + lit_start, new_size - lit_start));
  return finish();
}

bool LooksHighEntropy(const uint8_t* data, uint64_t size) {
  if (size < 1024) return false;  // too little to tell; small files are cheap anyway
  // Up to 8 evenly spaced samples of 8 KiB.
  constexpr uint64_t kSample = 8192;
  uint64_t counts[256] = {};
  uint64_t total = 0;
  int samples = size <= 8 * kSample ? 1 : 8;
  for (int s = 0; s < samples; ++s) {
    uint64_t off = samples == 1 ? 0 : (size - kSample) / (samples - 1) * s;
    uint64_t len = std::min(samples == 1 ? size : kSample, size - off);
    for (uint64_t i = 0; i < len; ++i) ++counts[data[off + i]];
    total += len;
  }
  double bits = 0;
  for (uint64_t c : counts) {
    if (c == 0) continue;
    double f = static_cast<double>(c) / static_cast<double>(total);
    bits -= f * std::log2(f);
  }
  // An order-0 estimate of a short sample of random bytes falls a little
  // short of 8 bits; allow for it.
  double max_bits = std::log2(static_cast<double>(std::min<uint64_t>(total, 256)));
  return bits > std::min(7.5, max_bits - 0.5);
}

}  // namespace cm::delta
