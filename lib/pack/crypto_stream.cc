#include "pack/crypto_stream.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "pack/assignment_format.h"
#include "util/hash.h"

namespace cm::pack {

constexpr size_t kTag = crypto_secretstream_xchacha20poly1305_ABYTES;

EncryptSink::EncryptSink(const GroupKey& key, ByteSink* out) : out_(out), key_(key) { InitCrypto(); }

Status EncryptSink::Write(const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    size_t take = std::min(n, kCryptChunk - buf_.size());
    buf_.append(p, take);
    p += take;
    n -= take;
    // Keep a full chunk buffered until more data arrives, so the last chunk
    // (tagged FINAL) is never empty unless the whole stream is.
    if (buf_.size() == kCryptChunk && n > 0) CM_RETURN_IF_ERROR(Flush(false));
  }
  return Status::Ok();
}

Status EncryptSink::Flush(bool final) {
  if (!header_written_) {
    unsigned char hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_init_push(&st_, hdr, key_.data());
    CM_RETURN_IF_ERROR(out_->Write(hdr, sizeof hdr));
    header_written_ = true;
  }
  std::vector<unsigned char> c(buf_.size() + kTag);
  unsigned long long clen = 0;
  crypto_secretstream_xchacha20poly1305_push(
      &st_, c.data(), &clen, reinterpret_cast<const unsigned char*>(buf_.data()), buf_.size(), nullptr, 0,
      final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
  buf_.clear();
  return out_->Write(c.data(), static_cast<size_t>(clen));
}

Status EncryptSink::Finish() { return Flush(true); }

Status DecryptSource::NextChunk() {
  if (!started_) {
    unsigned char hdr[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    CM_RETURN_IF_ERROR(in_->ReadExact(hdr, sizeof hdr, "encrypted stream"));
    if (crypto_secretstream_xchacha20poly1305_init_pull(&st_, hdr, key_.data()) != 0)
      return Error(Code::kCorrupt, "bad encryption header");
    started_ = true;
  }
  std::vector<unsigned char> c(kCryptChunk + kTag);
  size_t got = 0;
  while (got < c.size()) {
    auto r = in_->Read(c.data() + got, c.size() - got);
    if (!r.ok()) return r.status();
    if (*r == 0) break;
    got += *r;
  }
  if (got < kTag) return Error(Code::kCorrupt, "truncated encrypted stream");
  plain_.resize(got - kTag);
  unsigned long long mlen = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&st_, reinterpret_cast<unsigned char*>(plain_.data()), &mlen,
                                                 &tag, c.data(), got, nullptr, 0) != 0) {
    return Error(Code::kAuth, "cannot decrypt: wrong group key or damaged data");
  }
  plain_.resize(static_cast<size_t>(mlen));
  pos_ = 0;
  if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
    final_ = true;
    char extra;
    auto r = in_->Read(&extra, 1);
    if (!r.ok()) return r.status();
    if (*r != 0) return Error(Code::kCorrupt, "data after the end of an encrypted stream");
  } else if (got < c.size()) {
    return Error(Code::kCorrupt, "truncated encrypted stream");
  }
  return Status::Ok();
}

Result<size_t> DecryptSource::Read(void* buf, size_t n) {
  while (pos_ == plain_.size()) {
    if (final_) return size_t{0};
    CM_RETURN_IF_ERROR(NextChunk());
  }
  size_t take = std::min(n, plain_.size() - pos_);
  std::memcpy(buf, plain_.data() + pos_, take);
  pos_ += take;
  return take;
}

}  // namespace cm::pack
