// One assignment file applied to a content root: the content interpreter.
//
// Order of work (nothing is written to the content before step 2 passes):
//   1. AssignmentReader::Open + Verify: format, hashes, signature (required
//      when a public key is configured), decryption key.
//   2. Order: the same assignment again (same serial, same id) is a no-op;
//      any other serial <= the last applied one is kOrder.
//   3. Type: commit -> switch to the job's staged tree; rollback -> switch to
//      the previous release; others -> free-space check (statvfs on ROOT >=
//      header.space_needed + margin, else kNoSpace), then stage the part
//      (part_stage.h) command by command (stager.h).
//   4. The report is written to ROOT/.cm/reports/<serial>.json.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "apply/content_root.h"
#include "apply/report.h"
#include "apply/state.h"
#include "pack/keys.h"
#include "util/status.h"

namespace cm::apply {

struct ApplyOptions {
  std::optional<pack::PublicKey> pub_key;
  std::optional<pack::GroupKey> group_key;
  bool dry_run = false;                 // verify and check order only
  uint64_t space_margin = 1ull << 20;   // bytes kept free beyond space_needed
};

// Verifies an assignment without a content root. Fills the report's header
// fields when the header can be read.
Status VerifyFile(const std::string& path, const ApplyOptions& o, Report* report);

// Applies one assignment (see above). `report` is filled in on success and on
// error; report->file should be set by the caller (the name to show).
Status ApplyFile(ContentRoot* root, const std::string& path, const ApplyOptions& o, Report* report);

}  // namespace cm::apply
