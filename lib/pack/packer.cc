#include "pack/packer.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <vector>

#include "delta/binary_delta.h"
#include "delta/delta_table.h"
#include "pack/assignment_writer.h"
#include "pack/segments.h"
#include "util/file_util.h"
#include "util/hash.h"
#include "util/log.h"

namespace cm::pack {
namespace {

// Wraps a source and hashes what passes through.
class HashingSource : public ByteSource {
 public:
  explicit HashingSource(ByteSource* in) : in_(in) {}
  Result<size_t> Read(void* buf, size_t n) override {
    auto r = in_->Read(buf, n);
    if (r.ok()) hasher_.Update(buf, *r);
    return r;
  }
  Hash256 Finish() { return hasher_.Finish(); }

 private:
  ByteSource* in_;
  Hasher hasher_;
};

// Holds a delta stream: in memory up to a limit, then in an unlinked temp file.
class Spool {
 public:
  Status Write(const void* p, size_t n) {
    if (!fd_ && mem_.size() + n <= kMemLimit) {
      mem_.append(static_cast<const char*>(p), n);
      size_ += n;
      return Status::Ok();
    }
    if (!fd_) {
      const char* t = getenv("TMPDIR");
      fd_.reset(::open(t && *t ? t : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
      if (!fd_) return ErrnoError("temporary file", errno);
      CM_RETURN_IF_ERROR(WriteFull(fd_.get(), mem_.data(), mem_.size()));
      mem_.clear();
    }
    size_ += n;
    return WriteFull(fd_.get(), p, n);
  }
  uint64_t size() const { return size_; }
  bool in_memory() const { return !fd_; }
  const std::string& mem() const { return mem_; }
  std::unique_ptr<ByteSource> Source() {
    if (!fd_) return std::make_unique<StringSource>(mem_);
    return std::make_unique<FileRangeSource>(fd_.get(), 0, size_);
  }

 private:
  static constexpr size_t kMemLimit = 64 << 20;
  std::string mem_;
  UniqueFd fd_;
  uint64_t size_ = 0;
};

Meta MetaOf(const delta::DeltaEntry& e, bool owners) {
  Meta m;
  m.mode = e.mode & 07777;
  m.has_owner = owners;
  m.uid = e.uid;
  m.gid = e.gid;
  m.mtime_ns = e.mtime_ns;
  return m;
}

uint64_t NowMicros() {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  return static_cast<uint64_t>(tv.tv_sec) * 1000000u + static_cast<uint64_t>(tv.tv_usec);
}

// Packs entries into numbered parts, splitting at the size cap.
class PartWriter {
 public:
  // Bytes of one command besides its path (meta, sizes, hashes, reference).
  static constexpr uint64_t kCommandBound = 160;
  PartWriter(const PackOptions& o, uint64_t first_serial, std::string job, std::optional<delta::TableBase> base)
      : opts_(o), serial_(first_serial), job_(std::move(job)), base_(std::move(base)) {}

  Status Start() {
    writer_ = std::make_unique<AssignmentWriter>();
    WriterOptions w;
    w.type = opts_.type;
    w.serial = serial_;
    w.job_id = job_;
    w.part = part_;
    w.last_part = true;
    w.zstd_level = opts_.level;
    w.shared_level = opts_.small_level;
    w.sign = opts_.sign;
    w.encrypt = opts_.encrypt;
    w.chunk_size = opts_.chunk_size;
    w.version = opts_.version;
    CM_RETURN_IF_ERROR(writer_->Open(PartPath(opts_.output, part_), w));
    if (base_) {
      Command c;
      c.op = Opcode::kBase;
      c.base = *base_;
      if (part_ > 1) c.base.manifest = {};  // parts 2.. apply to the staged parts before them
      writer_->AddCommand(c);
    }
    first_commands_ = writer_->commands();
    return Status::Ok();
  }
  // Called before an item with at most `incoming` data bytes (raw: a bound
  // of what it stores) and its command are added: the part stays within
  // max_size as a whole unless the item alone exceeds it.
  Status MaybeSplit(uint64_t incoming, size_t path_bytes) {
    const uint64_t item = incoming + incoming / 128 + 64 + path_bytes + kCommandBound;
    if (writer_->commands() == first_commands_ || writer_->part_bytes_bound() + item <= opts_.max_size)
      return Status::Ok();
    writer_->set_last_part(false);
    CM_RETURN_IF_ERROR(FinishPart());
    ++part_;
    // Each part gets the next serial: consecutive for --serial, freshly
    // allocated (so still increasing) from a serial file or the clock.
    if (opts_.serial) {
      ++serial_;
    } else {
      uint64_t prev = serial_;
      CM_ASSIGN_OR_RETURN(serial_, AllocateSerials(opts_, 1));
      if (serial_ <= prev) serial_ = prev + 1;
    }
    return Start();
  }
  Status FinishPart() {
    CM_RETURN_IF_ERROR(writer_->Finish());
    result_.files.push_back({PartPath(opts_.output, part_), writer_->header()});
    return Status::Ok();
  }
  AssignmentWriter* w() { return writer_.get(); }
  PackResult& result() { return result_; }
  uint32_t parts() const { return part_; }

 private:
  const PackOptions& opts_;
  uint64_t serial_;
  std::string job_;
  uint32_t part_ = 1;
  std::unique_ptr<AssignmentWriter> writer_;
  PackResult result_;
  std::optional<delta::TableBase> base_;
  uint64_t first_commands_ = 0;  // the BASE command
};

Status AddWholeFile(PartWriter* pw, const PackOptions& opts, const std::string& root,
                    const delta::DeltaEntry& e, Command* c) {
  std::string full = root + "/" + e.path;
  UniqueFd fd(::open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return ErrnoError(full, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError(full, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kFailure, full + ": not a regular file any more");
  if (static_cast<uint64_t>(st.st_size) != e.size)
    return Error(Code::kFailure, full + ": changed since cm-delta ran (size differs)");
  uint8_t sample[65536];
  auto got = PreadFull(fd.get(), sample, sizeof sample, 0);
  if (!got.ok()) return Status(got.status().code(), full + ": " + got.status().message());
  bool compress = ShouldCompress(opts.policy, e.path, sample, *got);
  CM_RETURN_IF_ERROR(pw->MaybeSplit(e.size, e.path.size()));
  Hash256 h;
  DataRef ref;
  if (e.size <= kShareableMax) {
    // Already read whole (size <= sample size).
    h = HashBytes(sample, *got);
    CM_ASSIGN_OR_RETURN(ref, pw->w()->AddBlob(sample, *got, compress));
  } else {
    FileRangeSource src(fd.get(), 0, e.size);
    HashingSource hs(&src);
    auto r = pw->w()->AddStream(&hs, e.size, compress);
    if (!r.ok()) return Status(r.status().code(), full + ": " + r.status().message());
    ref = *r;
    h = hs.Finish();
  }
  if (h != e.hash) return Error(Code::kFailure, full + ": changed since cm-delta ran (content differs)");
  c->op = Opcode::kCreate;
  c->size = e.size;
  c->hash = e.hash;
  c->data = ref;
  pw->w()->AddSpaceNeeded(e.size);
  return Status::Ok();
}

Status AddDelta(PartWriter* pw, const PackOptions& opts, delta::DeltaTableReader* table,
                const delta::DeltaEntry& e, Command* c, uint64_t* raw) {
  Spool spool;
  std::vector<char> buf(1 << 16);
  for (;;) {
    auto r = table->ReadDeltaBytes(buf.data(), buf.size());
    if (!r.ok()) return r.status();
    if (*r == 0) break;
    CM_RETURN_IF_ERROR(spool.Write(buf.data(), *r));
  }
  *raw += spool.size();
  CM_RETURN_IF_ERROR(pw->MaybeSplit(spool.size(), e.path.size()));
  DataRef ref;
  if (spool.in_memory() && spool.size() <= kShareableMax) {
    CM_ASSIGN_OR_RETURN(ref, pw->w()->AddBlob(spool.mem().data(), spool.mem().size(), true));
  } else {
    // Literals of random-looking data (media, encrypted blobs) gain nothing
    // from a strong level and cost the most time there: the fast level.
    int level = opts.delta_level;
    if (spool.in_memory() &&
        delta::LooksHighEntropy(reinterpret_cast<const uint8_t*>(spool.mem().data()), spool.mem().size()))
      level = std::min(level, opts.level);
    auto src = spool.Source();
    CM_ASSIGN_OR_RETURN(ref, pw->w()->AddStream(src.get(), spool.size(), true, level));
  }
  c->op = Opcode::kPatch;
  c->size = e.size;
  c->hash = e.hash;
  c->base_size = e.base_size;
  c->base_hash = e.base_hash;
  c->data = ref;
  pw->w()->AddSpaceNeeded(e.size);
  return Status::Ok();
}

}  // namespace

std::string PartPath(const std::string& first, uint32_t part) {
  if (part == 1) return first;
  std::string stem = first;
  std::string ext;
  auto slash = first.find_last_of('/');
  auto dot = first.find_last_of('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash)) {
    stem = first.substr(0, dot);
    ext = first.substr(dot);
  }
  return stem + ".part" + std::to_string(part) + ext;
}

Result<uint64_t> AllocateSerials(const PackOptions& opts, uint64_t count) {
  if (opts.serial) return *opts.serial;
  if (opts.serial_file.empty()) return NowMicros();
  UniqueFd fd(::open(opts.serial_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) return ErrnoError(opts.serial_file, errno);
  if (::flock(fd.get(), LOCK_EX) != 0) return ErrnoError(opts.serial_file, errno);
  char buf[32] = {};
  auto got = PreadFull(fd.get(), buf, sizeof buf - 1, 0);
  if (!got.ok()) return got.status();
  uint64_t last = 0;
  if (*got > 0) {
    char* end = nullptr;
    last = std::strtoull(buf, &end, 10);
    while (end && (*end == '\n' || *end == ' ')) ++end;
    if (!end || *end != '\0') return Error(Code::kUsage, opts.serial_file + ": not a serial number file");
  }
  if (count == 0 || last > UINT64_MAX - count) return Error(Code::kUsage, opts.serial_file + ": serial number too large");
  const uint64_t first = std::max(last + 1, NowMicros());
  std::string text = std::to_string(first + count - 1) + "\n";
  // Rewritten in place under the lock: the file is tiny and the new number
  // is never shorter than the old one, so a crash leaves a valid number.
  CM_RETURN_IF_ERROR(PwriteFull(fd.get(), text.data(), text.size(), 0));
  if (::fsync(fd.get()) != 0) return ErrnoError(opts.serial_file, errno);
  return first;
}

Result<PackResult> PackDeltaTable(ByteSource* table_src, const std::string& source_root, const PackOptions& opts) {
  if (IsControl(opts.type)) return Error(Code::kUsage, "commit/rollback assignments carry no delta");
  CM_RETURN_IF_ERROR(CheckChunkSizeOption(opts.chunk_size));
  CM_RETURN_IF_ERROR(CheckFormatOption(opts.version, opts.chunk_size));
  delta::DeltaTableReader table(table_src);
  CM_RETURN_IF_ERROR(table.Begin());
  // Serials: reserve one now; parts beyond the first are reserved as they come
  // (with a serial file) or follow consecutively.
  CM_ASSIGN_OR_RETURN(uint64_t serial, AllocateSerials(opts, 1));
  std::string job = opts.job_id.empty() ? "job-" + std::to_string(serial) : opts.job_id;
  PartWriter pw(opts, serial, job, EffectiveBase(table.base(), opts));
  CM_RETURN_IF_ERROR(pw.Start());
  PackResult& res = pw.result();
  delta::DeltaEntry e;
  for (;;) {
    auto more = table.Next(&e);
    if (!more.ok()) return more.status();
    if (!*more) break;
    ++res.entries;
    Command c;
    c.path = e.path;
    c.meta = MetaOf(e, opts.owners);
    if (e.op == delta::Op::kRemove || e.op == delta::Op::kMeta || e.op == delta::Op::kTimes ||
        e.kind != delta::Kind::kFile)
      CM_RETURN_IF_ERROR(pw.MaybeSplit(e.link_target.size() + e.last_path.size(), e.path.size()));
    switch (e.op) {
      case delta::Op::kTimes:
        // Last in the table: every other command is in this part or an
        // earlier one, so the tree is complete when it is applied (a split
        // here leaves TOUCH commands only to the next part).
        c.op = Opcode::kTouch;
        c.path2 = e.last_path;
        c.meta = {};
        c.meta.mtime_ns = e.mtime_ns;
        c.size = e.size;
        break;
      case delta::Op::kRemove:
        c.op = Opcode::kRemove;
        c.meta = {};
        break;
      case delta::Op::kMeta:
        c.op = Opcode::kSetMeta;
        break;
      case delta::Op::kAdd:
      case delta::Op::kModify:
        if (e.kind == delta::Kind::kDir) {
          c.op = e.op == delta::Op::kAdd ? Opcode::kMkdir : Opcode::kSetMeta;
        } else if (e.kind == delta::Kind::kSymlink) {
          c.op = Opcode::kSymlink;
          c.path2 = e.link_target;
        } else if (e.op == delta::Op::kModify && e.encoding == delta::Encoding::kDelta) {
          CM_RETURN_IF_ERROR(AddDelta(&pw, opts, &table, e, &c, &res.raw_bytes));
        } else if (e.encoding == delta::Encoding::kDelta) {
          // An added file made from a moved one: copy the base (still on
          // the server: cm-delta holds its removal back), then patch it.
          Command copy;
          copy.op = Opcode::kCopy;
          copy.path = e.base_path;
          copy.path2 = e.path;
          pw.w()->AddCommand(copy);
          CM_RETURN_IF_ERROR(AddDelta(&pw, opts, &table, e, &c, &res.raw_bytes));
        } else {
          CM_RETURN_IF_ERROR(AddWholeFile(&pw, opts, source_root, e, &c));
          res.raw_bytes += e.size;
        }
        break;
    }
    pw.w()->AddCommand(c);
  }
  CM_RETURN_IF_ERROR(pw.FinishPart());
  res.no_changes = res.entries == 0;
  return std::move(res);
}

std::optional<delta::TableBase> EffectiveBase(const std::optional<delta::TableBase>& from_table,
                                             const PackOptions& opts) {
  if (opts.no_base || IsControl(opts.type)) return std::nullopt;
  const bool overridden = opts.base_release || opts.base_serial || opts.base_manifest || opts.result_manifest;
  if (!from_table && !overridden) return std::nullopt;
  delta::TableBase b = from_table.value_or(delta::TableBase{});
  if (opts.base_release) b.release = *opts.base_release;
  if (opts.base_serial) b.serial = *opts.base_serial;
  if (opts.base_manifest) b.manifest = *opts.base_manifest;
  if (opts.result_manifest) b.result_manifest = *opts.result_manifest;
  if (IsWholeTree(opts.type)) {
    b.release.clear();
    b.serial = 0;
    b.manifest = {};
  }
  if (b.release.empty() && b.serial == 0 && delta::IsZeroHash(b.manifest) && delta::IsZeroHash(b.result_manifest))
    return std::nullopt;
  return b;
}

Status ParseReleaseName(const std::string& name, uint64_t* serial, std::string* job) {
  auto bad = [&] {
    return Error(Code::kUsage, "release '" + name + "' is not a release name s<serial, 12 digits>-<job>");
  };
  if (name.size() < 15 || name[0] != 's') return bad();
  const size_t dash = name.find('-');
  if (dash == std::string::npos || dash < 13 || dash > 21) return bad();
  uint64_t v = 0;
  for (size_t i = 1; i < dash; ++i) {
    if (name[i] < '0' || name[i] > '9' || v > (UINT64_MAX - 9) / 10) return bad();
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  std::string j = name.substr(dash + 1);
  char canon[32];
  std::snprintf(canon, sizeof canon, "s%012" PRIu64 "-", v);
  // Exactly the name cm-apply gives: no extra leading zeros, a valid job id
  // that stays as it is when made a file name.
  if (v == 0 || !IsValidJobId(j) || j[0] == '.' || canon + j != name) return bad();
  *serial = v;
  *job = j;
  return Status::Ok();
}

Result<PackResult> PackControl(const PackOptions& opts) {
  if (!IsControl(opts.type)) return Error(Code::kUsage, "not a control assignment type");
  uint64_t target_serial = 0;
  std::string job = opts.job_id;
  if (!opts.rollback_release.empty()) {
    if (opts.type != Type::kRollback) return Error(Code::kUsage, "--release is for rollback assignments only");
    std::string target_job;
    CM_RETURN_IF_ERROR(ParseReleaseName(opts.rollback_release, &target_serial, &target_job));
    if (!job.empty() && job != target_job)
      return Error(Code::kUsage, "--job " + job + " differs from the job of --release " + opts.rollback_release);
    job = target_job;
  }
  if (job.empty() && opts.type == Type::kCommit) return Error(Code::kUsage, "--job is required");
  CM_RETURN_IF_ERROR(CheckChunkSizeOption(opts.chunk_size));
  CM_ASSIGN_OR_RETURN(uint64_t serial, AllocateSerials(opts, 1));
  if (job.empty()) job = "rollback-" + std::to_string(serial);
  AssignmentWriter w;
  WriterOptions wo;
  wo.type = opts.type;
  wo.serial = serial;
  wo.job_id = job;
  wo.rollback_serial = target_serial;
  wo.sign = opts.sign;
  wo.encrypt = opts.encrypt;
  wo.chunk_size = opts.chunk_size;
  wo.version = opts.version;
  CM_RETURN_IF_ERROR(w.Open(opts.output, wo));
  CM_RETURN_IF_ERROR(w.Finish());
  PackResult r;
  r.files.push_back({opts.output, w.header()});
  return r;
}

}  // namespace cm::pack
