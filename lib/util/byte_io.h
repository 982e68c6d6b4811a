// Little-endian and LEB128 encoding into a byte string, and a bounds-checked
// reader over a byte span. The reader is total: every Get* returns false (and
// poisons the reader) instead of reading past the end, so parsers built on it
// cannot overrun a buffer or allocate from an unchecked length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cm {

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      U8(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    U8(static_cast<uint8_t>(v));
  }
  void SVarint(int64_t v) { Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void Bytes(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  void Bytes(std::string_view s) { out_->append(s); }
  // Varint length followed by the bytes.
  void Str(std::string_view s) {
    Varint(s.size());
    Bytes(s);
  }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::string* out_;
};

class ByteReader {
 public:
  ByteReader(const void* p, size_t n) : p_(static_cast<const uint8_t*>(p)), n_(n) {}
  explicit ByteReader(std::string_view s) : ByteReader(s.data(), s.size()) {}

  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? n_ - pos_ : 0; }
  size_t position() const { return pos_; }
  bool AtEnd() const { return ok_ && pos_ == n_; }

  bool U8(uint8_t* v) {
    if (!Need(1)) return false;
    *v = p_[pos_++];
    return true;
  }
  bool U16(uint16_t* v) { return Le(v, 2); }
  bool U32(uint32_t* v) { return Le(v, 4); }
  bool U64(uint64_t* v) { return Le(v, 8); }
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!U8(&b)) return false;
      if (shift == 63 && b > 1) return Fail();
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *v = r;
        return true;
      }
    }
    return Fail();
  }
  bool SVarint(int64_t* v) {
    uint64_t u;
    if (!Varint(&u)) return false;
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool Bytes(void* out, size_t n) {
    if (!Need(n)) return false;
    std::memcpy(out, p_ + pos_, n);
    pos_ += n;
    return true;
  }
  // A view into the underlying buffer; valid as long as the buffer is.
  bool View(size_t n, std::string_view* out) {
    if (!Need(n)) return false;
    *out = std::string_view(reinterpret_cast<const char*>(p_ + pos_), n);
    pos_ += n;
    return true;
  }
  // Varint length (at most max_len) then bytes.
  bool Str(std::string* out, size_t max_len = 1 << 20) {
    uint64_t n;
    if (!Varint(&n)) return false;
    if (n > max_len) return Fail();
    std::string_view v;
    if (!View(static_cast<size_t>(n), &v)) return false;
    out->assign(v);
    return true;
  }
  bool Skip(size_t n) {
    if (!Need(n)) return false;
    pos_ += n;
    return true;
  }
  bool Fail() {
    ok_ = false;
    return false;
  }

 private:
  bool Need(size_t n) {
    if (!ok_ || n > n_ - pos_) return Fail();
    return true;
  }
  template <typename T>
  bool Le(T* v, int n) {
    if (!Need(static_cast<size_t>(n))) return false;
    uint64_t r = 0;
    for (int i = 0; i < n; ++i) r |= static_cast<uint64_t>(p_[pos_ + i]) << (8 * i);
    pos_ += static_cast<size_t>(n);
    *v = static_cast<T>(r);
    return true;
  }
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace cm
