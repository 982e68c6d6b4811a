// Assignments for the chunk plan, chunked file and held content tests:
// written with the real writer (format v2), kept as bytes.
#pragma once

#include <string>

#include "pack/assignment_writer.h"
#include "push/chunk_plan.h"
#include "support/test_util.h"

namespace cm::push::testing {

// Writes an assignment at `path` with one CREATE of `data_bytes` bytes that do
// not compress, chunked at chunk_size (0: format v1), signed when `sign` is set.
// Returns the file's bytes.
inline std::string MakeAssignment(const std::string& path, uint64_t data_bytes,
                                  uint32_t chunk_size = pack::kMinChunkSize,
                                  const pack::SigningKey* sign = nullptr) {
  pack::WriterOptions wo;
  wo.serial = 42;
  wo.job_id = "rel-42";
  wo.part = 2;
  wo.chunk_size = chunk_size;
  if (sign) wo.sign = *sign;
  pack::AssignmentWriter w;
  if (!w.Open(path, wo).ok()) return {};
  std::string data(data_bytes, '\0');
  uint64_t x = 88172645463325252ull;
  for (auto& c : data) {  // xorshift: incompressible, deterministic
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  pack::Command c;
  c.op = pack::Opcode::kCreate;
  c.path = "blob";
  c.size = data.size();
  c.hash = HashBytes(data.data(), data.size());
  StringSource src(data);
  auto ref = w.AddStream(&src, data.size(), false);
  if (!ref.ok()) return {};
  c.data = *ref;
  w.AddCommand(c);
  if (!w.Finish().ok()) return {};
  return test::ReadFile(path);
}

inline std::string HeaderOf(const std::string& file) { return file.substr(0, pack::kHeaderSize); }

// The tail as a fetcher finds it: from HeadAndTailRanges.
inline std::string TailOf(const std::string& file) {
  auto r = HeadAndTailRanges(HeaderOf(file));
  if (!r.ok() || r->tail.begin > file.size()) return {};
  return file.substr(r->tail.begin);
}

inline ChunkPlan PlanOf(const std::string& file) {
  auto p = ParseChunkPlan(HeaderOf(file), TailOf(file), nullptr);
  return p.ok() ? *p : ChunkPlan{};
}

}  // namespace cm::push::testing
