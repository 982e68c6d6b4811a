// Staging one part of a job: picks the tree the part starts from, builds a
// fresh work tree for it, lets the caller run the part's commands through a
// Stager, and makes the result the job's staged tree in one atomic state write.
//
//   part 1 of a delta type (publish, synchronize, remove, hot): clone of live
//   part 1 of a whole-tree type (replicate, restore):           empty tree
//   part k > 1:                                                 clone of parts 1..k-1
//
// Each part works in its own directory (.cm/stage/<job>.p<k>), so a part
// interrupted at any instant leaves the previous staged tree intact; the
// half-built directory is not named by the state and recovery removes it.
// A part 1 of a new job replaces the staged tree of an abandoned job.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "apply/content_root.h"
#include "apply/dir_meta.h"
#include "apply/stager.h"
#include "pack/assignment_format.h"
#include "util/file_util.h"
#include "util/status.h"

namespace cm::apply {

struct PartInfo {
  std::string job;
  pack::Type type = pack::Type::kPublish;
  uint32_t part = 1;
  uint64_t serial = 0;
  bool last_part = true;
};

class PartStage {
 public:
  // kOrder when the part does not follow the staged parts of its job.
  static Result<std::unique_ptr<PartStage>> Begin(ContentRoot* root, const PartInfo& info);
  ~PartStage();  // discards the work tree unless Finish() succeeded

  Stager& stager() { return *stager_; }
  const Stager& stager() const { return *stager_; }
  // The work directory's name under .cm/stage.
  const std::string& name() const { return name_; }
  // Makes the work tree durable (syncfs) and records it (and `applied`) in the
  // state: from then on it is the job's staged tree.
  Status Finish(const AppliedId& applied);

 private:
  PartStage(ContentRoot* root, PartInfo info) : root_(root), info_(std::move(info)) {}
  Status Build();
  ContentRoot* root_;
  PartInfo info_;
  std::string name_;      // work directory name under .cm/stage
  std::string base_dir_;  // previous part's stage dir name ("" = live or empty)
  UniqueFd work_fd_;
  DirMetaLog log_;
  std::unique_ptr<Stager> stager_;
  bool finished_ = false;
};

}  // namespace cm::apply
