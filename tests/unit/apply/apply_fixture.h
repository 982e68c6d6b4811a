// Helpers for the apply unit tests: build commands without assignment files,
// stage and commit them on a content root in a temporary directory.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "apply/content_root.h"
#include "apply/part_stage.h"
#include "apply/switcher.h"
#include "pack/assignment_format.h"
#include "support/test_util.h"
#include "util/byte_source.h"
#include "util/hash.h"

namespace cm::apply::testing {

inline pack::Meta Mode(uint32_t mode, int64_t mtime_ns = 0) {
  pack::Meta m;
  m.mode = mode;
  m.mtime_ns = mtime_ns;
  return m;
}

// A command with the data it needs (CREATE/PATCH), ready for Stager::Apply.
struct Op {
  pack::Command c;
  std::string data;
};

inline Op Mkdir(const std::string& path, uint32_t mode = 0755) {
  Op o;
  o.c.op = pack::Opcode::kMkdir;
  o.c.path = path;
  o.c.meta = Mode(mode);
  return o;
}

inline Op Create(const std::string& path, const std::string& content, uint32_t mode = 0644, int64_t mtime_ns = 0) {
  Op o;
  o.c.op = pack::Opcode::kCreate;
  o.c.path = path;
  o.c.meta = Mode(mode, mtime_ns);
  o.c.size = content.size();
  o.c.hash = HashBytes(content.data(), content.size());
  o.data = content;
  return o;
}

inline Op Simple(pack::Opcode op, const std::string& path, const std::string& path2 = "") {
  Op o;
  o.c.op = op;
  o.c.path = path;
  o.c.path2 = path2;
  return o;
}

inline Op SetMeta(const std::string& path, uint32_t mode, int64_t mtime_ns = 0) {
  Op o = Simple(pack::Opcode::kSetMeta, path);
  o.c.meta = Mode(mode, mtime_ns);
  return o;
}

inline Status ApplyOp(Stager& s, const Op& o) {
  StringSource src(o.data);
  bool has_data = o.c.op == pack::Opcode::kCreate || o.c.op == pack::Opcode::kPatch;
  return s.Apply(o.c, has_data ? &src : nullptr);
}

inline AppliedId IdFor(uint64_t serial, const std::string& job) {
  return AppliedId{serial, "id" + std::to_string(serial), job};
}

// Stages one part and finishes it.
inline Status StagePart(ContentRoot* root, const std::string& job, uint64_t serial, const std::vector<Op>& ops,
                        pack::Type type = pack::Type::kPublish, uint32_t part = 1, bool last = true) {
  PartInfo info{job, type, part, serial, last};
  auto ps = PartStage::Begin(root, info);
  if (!ps.ok()) return ps.status();
  for (const Op& o : ops) CM_RETURN_IF_ERROR(ApplyOp((*ps)->stager(), o));
  return (*ps)->Finish(IdFor(serial, job));
}

inline Status StageAndCommit(ContentRoot* root, const std::string& job, uint64_t serial, const std::vector<Op>& ops,
                             pack::Type type = pack::Type::kPublish) {
  CM_RETURN_IF_ERROR(StagePart(root, job, serial, ops, type));
  auto r = Commit(root, job, std::nullopt);
  return r.status();
}

inline std::unique_ptr<ContentRoot> OpenRoot(const std::string& dir, RootOptions o = {}) {
  auto r = ContentRoot::Open(dir, o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : nullptr;
}

inline ino_t Ino(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

inline uint32_t ModeOf(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0xffffffff;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace cm::apply::testing
