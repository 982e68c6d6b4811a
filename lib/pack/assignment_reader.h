// Opens an assignment file, verifies it completely before anyone acts on it,
// then yields its commands in order and the data each one refers to.
//
// Reads formats v1, v2 and v3 (v3: the compact body, pack/command_codec.h). Open() checks header (magic, version, header hash,
// sizes against the file size), trailer and, for v2, the trailer hash.
// Verify() reads the file once more: for v2 the chunk table against its hash
// in the header and every chunk against the table; H(data part) against the
// header, H(body) against the trailer, and the signature. Only after Verify() succeeds
// may NextCommand()/OpenData() be called; every byte they read is checked
// again as it is read (v2/v3: its chunk against the verified chunk table; v1:
// read from a private copy when ReaderOptions::snapshot_dir is set), so a
// writer of the file cannot change what is applied after Verify(). Memory stays bounded (a few MiB plus
// one buffered segment of at most kMaxBufferedSegment) whatever the file size.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "pack/assignment_format.h"
#include "pack/keys.h"
#include "util/byte_source.h"
#include "util/file_util.h"
#include "util/status.h"

namespace cm::pack {

struct ReaderOptions {
  // When set, the assignment must carry a valid signature by this key (kAuth otherwise).
  std::optional<PublicKey> pub_key;
  // Needed to read an encrypted assignment's body and data (kAuth without it).
  std::optional<GroupKey> group_key;
  // Without the group key, let Verify() check an encrypted assignment's
  // integrity and signature (everything but the commands, which only key
  // holders can read) and succeed; NextCommand/OpenData then give kAuth.
  // For `cm-pack verify/inspect`; cm-apply leaves it off.
  bool allow_sealed = false;
  // When set, a v1 assignment (no chunk table) is copied into an unlinked
  // private file in this directory at Open() and read only from there, so
  // what is staged is what Verify() checked. (v2/v3 need no copy: every read
  // after Verify() is checked chunk by chunk against the verified table.)
  std::string snapshot_dir;
  // v2/v3: Verify() checks the chunk table (its hash, the signature over
  // it) and parses the commands, but leaves each data chunk to be checked
  // when it is first read (every read is checked anyway): cm-apply reads
  // the data once instead of twice. `cm-pack verify`/`cm-apply verify`
  // leave it off and check every byte up front.
  bool lazy_chunks = false;
};

// Deepest directory nesting a command's path may have (its '/' count).
constexpr size_t kMaxPathDepth = 128;

class AssignmentReader {
 public:
  ~AssignmentReader();
  // Opens and reads the header and trailer (kCorrupt if malformed/truncated).
  static Result<std::unique_ptr<AssignmentReader>> Open(const std::string& path,
                                                       const ReaderOptions& opts);
  const Header& header() const { return header_; }
  const Trailer& trailer() const { return trailer_; }
  uint64_t file_size() const { return file_size_; }
  Layout layout() const { return LayoutOf(header_); }
  // The assignment's identity: H(header[0..256) || trailer[0..40)), the bytes
  // a signature covers (so it binds header, data hash and command sequence).
  Hash256 Id() const;

  // Full verification (see above). Errors: kCorrupt (hash/format), kAuth
  // (signature missing/invalid/other key, or encrypted without key).
  Status Verify();

  // Next command in order: true with *c filled, false after the last one.
  Result<bool> NextCommand(Command* c);
  // A source of exactly ref.length raw bytes for the command just returned.
  // Valid until the next call to NextCommand or OpenData. References must
  // not go backwards (segments are read in order).
  Result<ByteSource*> OpenData(const DataRef& ref);
  // True after Verify() of an encrypted assignment without its key
  // (ReaderOptions::allow_sealed): verified, but the commands are unreadable.
  bool sealed() const { return sealed_; }
  // After Verify(): the sum of the final sizes of all create/patch commands
  // (saturating), the bytes of new file content the assignment declares.
  uint64_t declared_bytes() const { return declared_bytes_; }
  // After Verify(): the BASE command (assignment_format.h Opcode::kBase) if
  // the assignment has one; NextCommand skips it. Commands other than BASE:
  // header().command_count - (base() ? 1 : 0).
  const std::optional<delta::TableBase>& base() const { return base_; }

 private:
  AssignmentReader() = default;
  Status Load(const std::string& path);  // header and trailer from impl_->fd
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Header header_;
  Trailer trailer_;
  uint64_t file_size_ = 0;
  bool verified_ = false;
  bool sealed_ = false;
  uint64_t declared_bytes_ = 0;
  std::optional<delta::TableBase> base_;
  ReaderOptions opts_;
};

}  // namespace cm::pack
