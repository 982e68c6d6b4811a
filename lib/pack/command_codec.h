// The compact command encoding of assignment format v3 (docs/FORMATS.md,
// "Body v3"). Same framing as v1/v2 (u8 opcode | varint length | payload),
// but each payload is coded against the previous command:
//
//   payload := varint keep | str suffix        path = prev_path[0..keep) + suffix
//              then, by opcode:
//     MKDIR, SET_META  meta3
//     CREATE           meta3, varint size, ref3            (ref length = size; no hash)
//     PATCH            meta3, varint size, varint base_size, base_hash[32], ref3, varint length
//     REMOVE           -
//     RENAME, COPY     str to
//     SYMLINK          str target, meta3
//     TOUCH            varint keep2 | str suffix2 (last path = path[0..keep2) + suffix2),
//                      svarint mtime_delta (mtime = previous meta's mtime + delta,
//                      which becomes the previous meta's mtime), varint count
//   except BASE, whose payload is as in v1/v2 (no keep/suffix) and which
//   leaves the context alone.
//   meta3 := u8 bits | [varint mode] | [varint uid | varint gid] | [svarint mtime_delta]
//     bit 0: mode follows (else the previous meta's mode)
//     bit 1: uid and gid follow (else the previous meta's)
//     bit 2: has_owner
//     bit 3: mtime_delta follows: mtime = previous meta's mtime + delta
//            (else the previous meta's mtime); other bits must be 0
//   ref3  := varint segment_step | varint gap
//            segment = previous ref's segment + step; offset = gap when the step
//            is > 0, else previous ref's end + gap
//
// "Previous" state starts empty (path "", meta all 0, ref {0, 0, 0}) and is
// updated by every command that carries it. The decoder is total: every
// field is bounds-checked (paths <= 4096 bytes, keep <= previous path length,
// no arithmetic overflow) and errors are kCorrupt.
#pragma once

#include <string>
#include <string_view>

#include "pack/assignment_format.h"
#include "util/status.h"

namespace cm::pack {

class CommandEncoder {
 public:
  // Appends opcode, length and compact payload of c to *out. c.hash is not
  // written (has_hash is false after decoding).
  void Encode(const Command& c, std::string* out);

 private:
  std::string prev_path_;
  Meta prev_meta_;
  DataRef prev_ref_;
};

class CommandDecoder {
 public:
  // Decodes one payload (opcode known) and advances the context.
  Status Decode(Opcode op, std::string_view payload, Command* c);

 private:
  std::string prev_path_;
  Meta prev_meta_;
  DataRef prev_ref_;
};

}  // namespace cm::pack
