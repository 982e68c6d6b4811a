// One assignment file applied to a content root: the content interpreter.
//
// Order of work (nothing is written to the content before step 2 passes):
//   1. AssignmentReader::Open, the signature policy, Verify: format, hashes,
//      signature, decryption key. Policy (kAuth): a signed assignment needs
//      the public key (its header names the signer only by key id, so a
//      signature can never be checked, nor accepted, without the key); an
//      unsigned one is refused unless allow_unsigned. A v1 assignment is read
//      from a private copy under ROOT/.cm, v2/v3 chunk by chunk against the
//      verified chunk table: what is staged is exactly what was verified.
//   2. Order: the same assignment again (same serial, same id) is a no-op;
//      any other serial <= the last applied one is kOrder.
//   3. Type: commit -> switch to the job's staged tree; rollback -> switch to
//      the previous release; others -> free-space check (statvfs on ROOT:
//      the larger of header.space_needed and the sum of the commands'
//      declared sizes, + margin, must be free, and an inode per command,
//      else kNoSpace), then stage the part (part_stage.h) command by command
//      (stager.h) within a byte budget of the free space less the margin.
//      Before all that, part 1 of a delta type whose BASE (pack::Opcode::kBase)
//      names a base manifest: the live tree must be that tree
//      (release_manifest.h CheckBase; kBaseMismatch, nothing staged). When the
//      last part is staged: the staged tree's manifest is recorded for the
//      release it becomes and must be BASE's result manifest when it names one
//      (kBaseMismatch, the stage is discarded).
//   4. The report is written to ROOT/.cm/reports/<serial>.json.
#pragma once

#include <cstdint>
#include <functional>
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
  std::optional<GroupKey> group_key;
  bool allow_unsigned = false;          // accept unsigned assignments (signed ones are still checked)
  std::string pub_key_hint;             // where a key was looked for, for the error without one
  bool dry_run = false;                 // verify and check order only
  uint64_t space_margin = 1ull << 20;   // bytes kept free beyond space_needed
  // Tests only: called after Verify() and before the first byte is staged.
  std::function<void()> after_verify;
};

// Verifies an assignment without a content root. Fills the report's header
// fields when the header can be read.
Status VerifyFile(const std::string& path, const ApplyOptions& o, Report* report);

// Applies one assignment (see above). `report` is filled in on success and on
// error; report->file should be set by the caller (the name to show).
Status ApplyFile(ContentRoot* root, const std::string& path, const ApplyOptions& o, Report* report);

}  // namespace cm::apply
