#include "apply/applier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <algorithm>
#include <chrono>

#include "apply/part_stage.h"
#include "apply/release_manifest.h"
#include "apply/switcher.h"
#include "pack/assignment_reader.h"
#include "util/file_util.h"
#include "util/hash.h"
#include "util/log.h"

namespace cm::apply {
namespace {

// Messages from the reader may start with the file's path; the tool prints
// the path itself.
Status StripPath(const Status& st, const std::string& path) {
  const std::string prefix = path + ": ";
  if (st.message().rfind(prefix, 0) == 0) return Status(st.code(), st.message().substr(prefix.size()));
  return st;
}

void FillHeader(const pack::Header& h, Report* r) {
  r->job = h.job_id;
  r->serial = h.serial;
  r->type = pack::TypeName(h.type);
  r->part = h.part;
  r->last_part = (h.flags & pack::kFlagLastPart) != 0;
}

// The signature policy (applier.h, step 1), on the header alone.
Status CheckSignaturePolicy(const pack::Header& h, const ApplyOptions& o) {
  if (h.flags & pack::kFlagSigned) {
    if (!o.pub_key) {
      return Error(Code::kAuth, "assignment is signed (key id " + ToHex(h.key_id.data(), h.key_id.size()) +
                                    ") but no public key is configured to check it (--pub-key FILE" +
                                    (o.pub_key_hint.empty() ? std::string() : " or " + o.pub_key_hint) + ")");
    }
    return Status::Ok();
  }
  if (!o.allow_unsigned)
    return Error(Code::kAuth, "assignment is not signed; refused (--allow-unsigned accepts unsigned assignments)");
  return Status::Ok();
}

Result<std::unique_ptr<pack::AssignmentReader>> OpenVerified(const std::string& path, const ApplyOptions& o,
                                                             const std::string& snapshot_dir, Report* report) {
  pack::ReaderOptions ro;
  ro.pub_key = o.pub_key;
  ro.group_key = o.group_key;
  ro.snapshot_dir = snapshot_dir;
  // Applying reads every chunk it uses through the checked table anyway;
  // `verify` (no snapshot dir) checks every byte up front.
  ro.lazy_chunks = !snapshot_dir.empty();
  auto reader = pack::AssignmentReader::Open(path, ro);
  if (!reader.ok()) return StripPath(reader.status(), path);
  const pack::Header& h = (*reader)->header();
  FillHeader(h, report);
  CM_RETURN_IF_ERROR(CheckSignaturePolicy(h, o));
  if (!(h.flags & pack::kFlagSigned) && o.pub_key) {
    // Allowed unsigned (the policy passed): read it without a key.
    ro.pub_key.reset();
    reader = pack::AssignmentReader::Open(path, ro);
    if (!reader.ok()) return StripPath(reader.status(), path);
    if ((*reader)->header().flags & pack::kFlagSigned) return Error(Code::kCorrupt, "the file changed while being read");
  }
  Status st = (*reader)->Verify();
  if (!st.ok()) return StripPath(st, path);
  return reader;
}

// Checks the declared needs against the free space and inodes of ROOT's file
// system before anything is written; returns the byte budget for staging
// (free bytes less the margin).
Result<uint64_t> CheckSpace(const std::string& root, uint64_t needed, uint64_t commands, uint64_t margin) {
  struct statvfs vfs;
  if (::statvfs(root.c_str(), &vfs) != 0) return ErrnoError(root, errno);
  const uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (needed > UINT64_MAX - margin || avail < needed + margin)
    return Error(Code::kNoSpace, "not enough space in " + root + ": the assignment declares " +
                                     std::to_string(needed) + " bytes of files (+ margin " + std::to_string(margin) +
                                     "), " + std::to_string(avail) + " bytes free");
  // Each command makes at most one inode (f_files == 0: the file system has no fixed count).
  if (vfs.f_files != 0 && commands > static_cast<uint64_t>(vfs.f_favail))
    return Error(Code::kNoSpace, "not enough inodes in " + root + ": the assignment has " +
                                     std::to_string(commands) + " commands, " + std::to_string(vfs.f_favail) +
                                     " inodes free");
  return avail - margin;
}

// The stage is complete: its manifest (stat cache: the live release's, whose
// files it hard-links) must be the assignment's result manifest when it names
// one, else kBaseMismatch and the stage is dropped (PartStage's destructor);
// it is kept as the manifest of the release the stage becomes.
Status RecordStagedManifest(ContentRoot* root, const PartStage& stage, const PartInfo& info,
                            const std::optional<delta::TableBase>& base, Report* report) {
  const Layout& l = root->layout();
  auto live = RecordedManifest(l, root->state().current, /*compute_if_missing=*/true);
  if (!live.ok()) log::Warn("no manifest of the live release: " + live.status().message());
  if (live.ok()) CarryTouchCopies(stage.stager().touch_copies(), &*live);
  CM_ASSIGN_OR_RETURN(delta::Manifest m, StagedManifest(l, stage.name(), live.ok() ? &*live : nullptr));
  const Hash256 h = delta::ManifestHash(m);
  if (base && !delta::IsZeroHash(base->result_manifest) && h != base->result_manifest)
    return Error(Code::kBaseMismatch, "the staged tree has manifest " + delta::ShortHash(h) +
                                          ", the assignment makes " + delta::ShortHash(base->result_manifest) +
                                          "; stage discarded, live tree unchanged");
  if (::mkdir(l.manifests.c_str(), 0700) != 0 && errno != EEXIST) return ErrnoError(l.manifests, errno);
  CM_RETURN_IF_ERROR(delta::SaveManifest(ManifestPath(l, ReleaseId(info.serial, info.job)), m));
  report->staged_manifest = ToHex(h);
  return Status::Ok();
}

Status StageCommands(ContentRoot* root, pack::AssignmentReader* reader, const AppliedId& id, uint64_t budget,
                     Report* report) {
  const pack::Header& h = reader->header();
  PartInfo info;
  info.job = h.job_id;
  info.type = h.type;
  info.part = h.part;
  info.serial = h.serial;
  info.last_part = (h.flags & pack::kFlagLastPart) != 0;
  CM_ASSIGN_OR_RETURN(std::unique_ptr<PartStage> stage, PartStage::Begin(root, info));
  stage->stager().set_write_budget(budget);
  const uint64_t commands = h.command_count - (reader->base() ? 1 : 0);
  pack::Command c;
  uint64_t done = 0;
  const bool progress = log::ProgressEnabled();  // isatty once, not per command
  for (;;) {
    CM_ASSIGN_OR_RETURN(bool more, reader->NextCommand(&c));
    if (!more) break;
    ByteSource* data = nullptr;
    if (c.op == pack::Opcode::kCreate || c.op == pack::Opcode::kPatch) {
      CM_ASSIGN_OR_RETURN(data, reader->OpenData(c.data));
    }
    Status st = stage->stager().Apply(c, data);
    report->stats = stage->stager().stats();
    if (!st.ok()) return st;
    if (progress && (++done % 64 == 0 || done == commands))
      log::Progress("staging " + std::to_string(done) + "/" + std::to_string(commands));
  }
  log::ProgressDone();
  report->stats = stage->stager().stats();
  if (info.last_part) CM_RETURN_IF_ERROR(RecordStagedManifest(root, *stage, info, reader->base(), report));
  return stage->Finish(id);
}

}  // namespace

Status VerifyFile(const std::string& path, const ApplyOptions& o, Report* report) {
  auto t0 = std::chrono::steady_clock::now();
  report->host = HostName();
  auto reader = OpenVerified(path, o, "", report);
  report->status = reader.ok() ? Status::Ok() : reader.status();
  if (reader.ok()) report->action = "verified";
  report->duration_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
                            .count();
  return report->status;
}

Status ApplyFile(ContentRoot* root, const std::string& path, const ApplyOptions& o, Report* report) {
  auto t0 = std::chrono::steady_clock::now();
  report->host = HostName();
  auto finish = [&](Status st, bool write_report) {
    report->status = st;
    report->duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    report->release_serial = ReleaseSerial(report->release);
    report->manifest = RecordedManifestHex(root->layout(), report->release, /*compute_if_missing=*/!o.dry_run);
    if (write_report && !o.dry_run) {
      Status w = WriteReport(root->layout(), *report, root->options().report_keep);
      // After a failure the apply's own error is the one line that matters.
      if (!w.ok()) (st.ok() ? log::Warn : log::Info)("cannot write report: " + w.message());
    }
    return st;
  };

  report->release = root->state().current;
  auto reader = OpenVerified(path, o, root->layout().meta, report);
  if (!reader.ok()) return finish(reader.status(), false);
  const pack::Header& h = (*reader)->header();
  AppliedId applied;
  applied.serial = h.serial;
  applied.job = h.job_id;
  applied.id_hex = ToHex((*reader)->Id());
  const AppliedId* id = &applied;

  State& s = root->state();
  const SerialSpace space = pack::IsControl(h.type) ? SerialSpace::kSwitch : SerialSpace::kStage;
  auto no_op = [&](const char* why) {
    report->action = "already-applied";
    report->release = s.current;
    log::Info(path + ": already applied (serial " + std::to_string(h.serial) + ", " + why + ")");
    return finish(Status::Ok(), false);
  };
  if (const AppliedId* a = s.Find(h.serial)) {
    if (a->id_hex == id->id_hex) return no_op("applied before");
    return finish(Error(Code::kOrder, "serial " + std::to_string(h.serial) + " was applied with other content"),
                  false);
  }
  // A part of the live job (the live release was made from its newest part),
  // or a commit of it while it is not staged again: already done.
  const bool job_live = !s.current.empty() && ReleaseJob(s.current) == SafeName(h.job_id);
  if (job_live && !pack::IsControl(h.type) && h.serial <= ReleaseSerial(s.current)) return no_op("its job is live");
  if (job_live && h.type == pack::Type::kCommit && !(s.HasStage() && s.staged_job == h.job_id))
    return no_op("its job is live");
  if (h.serial <= s.LastSerial(space))  // never applied here (or too long ago to be remembered)
    return finish(Error(Code::kOrder, "serial " + std::to_string(h.serial) + " is older than the last applied (" +
                                          std::to_string(s.LastSerial(space)) + ")" +
                                          (space == SerialSpace::kSwitch ? " commit or rollback" : "")),
                  false);
  if (o.dry_run) {
    report->action = "verified";
    report->release = s.current;
    return finish(Status::Ok(), false);
  }

  if (pack::IsControl(h.type)) {
    auto r = h.type == pack::Type::kCommit
                 ? Commit(root, h.job_id, *id, &report->hooks)
                 : Rollback(root, *id, h.rollback_serial ? ReleaseId(h.rollback_serial, h.job_id) : "",
                            &report->hooks);
    report->release = s.current;
    if (!r.ok()) return finish(r.status(), true);
    report->action = r->noop ? "unchanged" : r->already ? "already-applied"
                     : h.type == pack::Type::kCommit ? "committed" : "rolled-back";
    return finish(r->post_hook, true);
  }
  // The tree the assignment applies to (its BASE): checked on the live tree
  // before anything is staged; whole trees apply to any tree.
  const std::optional<delta::TableBase>& base = (*reader)->base();
  if (base && h.part == 1 && !pack::IsWholeTree(h.type)) {
    Status st = CheckBase(root->layout(), s.current, *base);
    if (!st.ok()) {
      report->release = s.current;
      return finish(st, true);
    }
  }
  // A job of one part that changes nothing: no stage and, at its commit, no
  // new release (which would push the real rollback target out).
  const bool last = (h.flags & pack::kFlagLastPart) != 0;
  const uint64_t commands = h.command_count - (base ? 1 : 0);
  if (commands == 0 && h.part == 1 && last && !pack::IsWholeTree(h.type) && !s.current.empty() &&
      !(s.HasStage() && s.staged_job == h.job_id)) {
    State before = s;
    s.noop_job = h.job_id;
    s.Record(*id, SerialSpace::kStage);
    if (Status st = root->SaveState(); !st.ok()) {
      s = before;
      return finish(st, true);
    }
    report->action = "unchanged";
    report->release = s.current;
    log::Info(path + ": job " + h.job_id + " changes nothing; no release will be made for it");
    return finish(Status::Ok(), true);
  }
  auto budget = CheckSpace(root->layout().root, std::max(h.space_needed, (*reader)->declared_bytes()),
                           h.command_count, o.space_margin);
  if (!budget.ok()) return finish(budget.status(), true);
  if (o.after_verify) o.after_verify();
  Status st = StageCommands(root, reader->get(), *id, *budget, report);
  if (st.ok()) report->action = "staged";
  report->release = s.current;
  return finish(st, true);
}

}  // namespace cm::apply
