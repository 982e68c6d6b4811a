#include "ckpt/sync_table.h"

#include "delta/delta_table.h"

namespace cm::ckpt {

namespace {

using delta::DeltaEntry;
using delta::Kind;
using delta::ManifestEntry;
using delta::Op;

bool Under(const std::string& path, const std::string& dir) {
  return !dir.empty() && path.size() > dir.size() && path[dir.size()] == '/' && path.compare(0, dir.size(), dir) == 0;
}

DeltaEntry FromWant(Op op, const ManifestEntry& w) {
  DeltaEntry e;
  e.op = op;
  e.kind = w.kind;
  e.path = w.path;
  e.mode = w.kind == Kind::kSymlink ? 0777 : w.mode;
  e.mtime_ns = w.mtime_ns;
  e.size = w.kind == Kind::kFile ? w.size : 0;
  e.hash = w.hash;
  e.link_target = w.link_target;
  return e;
}

DeltaEntry Removal(const ManifestEntry& h) {
  DeltaEntry e;
  e.op = Op::kRemove;
  e.kind = h.kind;
  e.path = h.path;
  e.mode = h.mode;
  e.mtime_ns = h.mtime_ns;
  e.size = h.kind == Kind::kFile ? h.size : 0;
  return e;
}

class SyncWriter {
 public:
  SyncWriter(ByteSink* sink, const std::set<std::string>& unknown) : w_(sink), unknown_(unknown) {}

  Status Run(const delta::Manifest& want, const delta::Manifest& have) {
    CM_RETURN_IF_ERROR(w_.Begin(delta::kTableFlagChecksum));
    size_t i = 0, j = 0;
    const auto& W = want.entries;
    const auto& H = have.entries;
    while (i < W.size() || j < H.size()) {
      // Entries of `have` under a directory this table removed are gone.
      if (j < H.size() && Under(H[j].path, gone_)) {
        ++j;
        continue;
      }
      int c = i == W.size() ? 1 : j == H.size() ? -1 : delta::ComparePaths(W[i].path, H[j].path);
      if (c < 0) {
        CM_RETURN_IF_ERROR(OnlyWant(W[i++]));
      } else if (c > 0) {
        CM_RETURN_IF_ERROR(OnlyHave(H[j++]));
      } else {
        CM_RETURN_IF_ERROR(Both(W[i++], H[j++]));
      }
    }
    // Unknown paths neither manifest has: the server may have them anyway.
    // They come after everything else; REMOVE of a missing path is a no-op.
    for (const auto& p : unknown_) {
      if (!delta::IsSafeRelativePath(p) || want.Find(p) || have.Find(p)) continue;
      if (InWantSubtreeRemoved(want, p)) continue;
      DeltaEntry e;
      e.op = Op::kRemove;
      e.kind = Kind::kFile;
      e.path = p;
      pending_.push_back(std::move(e));
    }
    // Extra unknowns go last, deepest first is not needed: REMOVE takes subtrees.
    for (const auto& e : pending_) CM_RETURN_IF_ERROR(Add(e));
    CM_RETURN_IF_ERROR(w_.End());
    return Status::Ok();
  }

  SyncStats stats;

 private:
  bool Unknown(const std::string& p) const { return unknown_.count(p) != 0; }

  // An unknown path with no manifest entry under a directory of want is
  // still a stray to remove (after its parent exists); one whose ancestor is
  // not a directory of want is removed with that ancestor already.
  static bool InWantSubtreeRemoved(const delta::Manifest& want, const std::string& p) {
    size_t slash = p.rfind('/');
    if (slash == std::string::npos) return false;
    const ManifestEntry* parent = want.Find(p.substr(0, slash));
    return !parent || parent->kind != Kind::kDir;
  }

  Status Add(const DeltaEntry& e) {
    if (e.op != Op::kRemove && e.op != Op::kMeta && e.kind == Kind::kFile) {
      ++stats.files;
      stats.bytes += e.size;
    }
    ++stats.entries;
    return w_.AddEntry(e);
  }

  // want's entry with nothing in have (or have's was just removed).
  Status OnlyWant(const ManifestEntry& w) {
    if (Unknown(w.path)) {  // the server may hold something there after all
      DeltaEntry r = FromWant(Op::kRemove, w);
      r.size = 0;
      CM_RETURN_IF_ERROR(Add(r));
    }
    return Add(FromWant(Op::kAdd, w));
  }

  Status OnlyHave(const ManifestEntry& h) {
    if (h.kind == Kind::kDir) gone_ = h.path;
    return Add(Removal(h));
  }

  Status Both(const ManifestEntry& w, const ManifestEntry& h) {
    if (w.kind != h.kind || Unknown(w.path)) {
      CM_RETURN_IF_ERROR(Add(Removal(h)));
      if (h.kind == Kind::kDir) gone_ = h.path;
      return Add(FromWant(Op::kAdd, w));
    }
    switch (w.kind) {
      case Kind::kFile:
        if (w.size != h.size || w.hash != h.hash) return Add(FromWant(Op::kModify, w));
        if (w.mode != h.mode) return Add(FromWant(Op::kMeta, w));
        return Status::Ok();
      case Kind::kSymlink:
        if (w.link_target != h.link_target) return Add(FromWant(Op::kModify, w));
        return Status::Ok();
      case Kind::kDir:
        if (w.mode != h.mode) return Add(FromWant(Op::kMeta, w));
        return Status::Ok();
    }
    return Status::Ok();
  }

  delta::DeltaTableWriter w_;
  const std::set<std::string>& unknown_;
  std::string gone_;  // the last directory of `have` removed whole
  std::vector<DeltaEntry> pending_;
};

}  // namespace

Result<SyncStats> WriteSyncTable(const delta::Manifest& want, const delta::Manifest& have,
                                 const std::set<std::string>& unknown_paths, ByteSink* sink) {
  SyncWriter w(sink, unknown_paths);
  CM_RETURN_IF_ERROR(w.Run(want, have));
  return w.stats;
}

}  // namespace cm::ckpt
