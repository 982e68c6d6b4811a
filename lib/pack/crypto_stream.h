// Streaming authenticated encryption of an assignment's body or data part
// with the group key: libsodium secretstream (XChaCha20-Poly1305). Stored
// form: 24-byte stream header, then chunks of kCryptChunk plaintext bytes plus
// a 17-byte tag each; the last chunk carries the FINAL tag, so truncation and
// reordering are detected.
#pragma once

#include <sodium.h>

#include <string>

#include "pack/keys.h"
#include "util/byte_source.h"

namespace cm::pack {

class EncryptSink : public ByteSink {
 public:
  // Writes ciphertext to *out (not owned). Call Finish() exactly once.
  EncryptSink(const GroupKey& key, ByteSink* out);
  Status Write(const void* buf, size_t n) override;
  Status Finish();

 private:
  Status Flush(bool final);
  crypto_secretstream_xchacha20poly1305_state st_;
  ByteSink* out_;
  std::string buf_;
  bool header_written_ = false;
  GroupKey key_;
};

class DecryptSource : public ByteSource {
 public:
  // Reads ciphertext from *in (not owned), which must end where the stream ends.
  DecryptSource(const GroupKey& key, ByteSource* in) : key_(key), in_(in) {}
  // kAuth when the key is wrong, kCorrupt when the stream is damaged or truncated.
  Result<size_t> Read(void* buf, size_t n) override;

 private:
  Status NextChunk();
  GroupKey key_;
  ByteSource* in_;
  crypto_secretstream_xchacha20poly1305_state st_;
  bool started_ = false, final_ = false;
  std::string plain_;
  size_t pos_ = 0;
};

}  // namespace cm::pack
