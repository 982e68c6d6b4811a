// Helpers shared by the delta module's tests: apply an instruction stream to
// in-memory bytes through PatchApplier (memfd-backed), and make test data.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <random>
#include <string>

#include "delta/binary_delta.h"
#include "delta/instructions.h"
#include "util/byte_source.h"
#include "util/file_util.h"

namespace cm::delta::testing {

inline UniqueFd MemFd(const std::string& data) {
  UniqueFd fd(::memfd_create("cm-delta-test", MFD_CLOEXEC));
  if (!data.empty()) (void)WriteFull(fd.get(), data.data(), data.size());
  return fd;
}

// Applies stream to base, feeding it in pieces of `piece` bytes (0 = at once).
inline Result<std::string> Apply(const std::string& base, const std::string& stream,
                                 uint64_t expected_size, size_t piece = 0) {
  UniqueFd b = MemFd(base);
  UniqueFd out = MemFd("");
  PatchApplier pa(b.get(), base.size(), out.get(), expected_size);
  if (piece == 0) piece = stream.size() + 1;
  for (size_t i = 0; i < stream.size(); i += piece) {
    Status st = pa.Feed(stream.data() + i, std::min(piece, stream.size() - i));
    if (!st.ok()) return st;
  }
  Status st = pa.Finish();
  if (!st.ok()) return st;
  std::string result(pa.written(), '\0');
  auto got = PreadFull(out.get(), result.data(), result.size(), 0);
  if (!got.ok()) return got.status();
  return result;
}

struct DeltaResult {
  std::string stream;
  DeltaStats stats;
};

inline DeltaResult Delta(const std::string& old_data, const std::string& new_data,
                         const DeltaOptions& opts = {}) {
  StringSink sink;
  InstructionWriter w(&sink);
  DeltaResult r;
  Status st = ComputeDelta(reinterpret_cast<const uint8_t*>(old_data.data()), old_data.size(),
                           reinterpret_cast<const uint8_t*>(new_data.data()), new_data.size(), opts,
                           &w, &r.stats);
  if (!st.ok()) std::abort();
  r.stream = std::move(sink.data());
  return r;
}

inline std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Text-like lines: words from a small vocabulary.
inline std::string RandomText(std::mt19937_64& rng, size_t lines) {
  static const char* kWords[] = {"the", "content", "mover", "delta", "file", "tree", "server",
                                 "staging", "shadow", "copy", "insert", "remove", "alpha", "beta"};
  std::string s;
  for (size_t i = 0; i < lines; ++i) {
    size_t n = 3 + rng() % 10;
    for (size_t j = 0; j < n; ++j) {
      s += kWords[rng() % 14];
      s += j + 1 < n ? ' ' : '\n';
    }
  }
  return s;
}

}  // namespace cm::delta::testing
