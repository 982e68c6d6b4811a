#include "pushrun/chunk_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "util/crash_point.h"

namespace cm::pushrun {
namespace {

using push::ChunkHeader;
using push::kChunkHeaderSize;

Result<uint64_t> FileSize(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(path, errno);
  return static_cast<uint64_t>(st.st_size);
}

Status Truncate(int fd, uint64_t size, const std::string& path) {
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) return ErrnoError(path + ": truncate", errno);
  return Status::Ok();
}

Status DataSync(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return ErrnoError(path + ": fdatasync", errno);
  return Status::Ok();
}

bool Exists(const std::string& path, struct stat* st) { return ::lstat(path.c_str(), st) == 0; }

}  // namespace

ChunkStore::ChunkStore(const std::string& dir, const std::string& job, uint32_t item, const pack::PublicKey& key,
                       const ChunkStoreOptions& opts)
    : dir_(dir),
      job_(job),
      base_(dir + "/" + job + "." + std::to_string(item)),
      item_(item),
      opts_(opts),
      key_id_(key.Id()),
      verifier_(key, job, item),
      cursor_(push::StartCursor(job, item)) {}

std::string ChunkStore::part_path() const { return base_ + ".part"; }
std::string ChunkStore::records_path() const { return base_ + ".rec"; }
std::string ChunkStore::final_path() const { return base_; }

Result<std::unique_ptr<ChunkStore>> ChunkStore::Open(const std::string& dir, const std::string& job, uint32_t item,
                                                     const pack::PublicKey& key, const ChunkStoreOptions& opts) {
  if (!push::IsValidChunkJobId(job)) return Error(Code::kUsage, "invalid job id for a chunk store: '" + job + "'");
  std::unique_ptr<ChunkStore> s(new ChunkStore(dir, job, item, key, opts));
  CM_RETURN_IF_ERROR(s->OpenFiles());
  CM_RETURN_IF_ERROR(s->Recover());
  return s;
}

Status ChunkStore::OpenFiles() {
  if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError(dir_, errno);
  struct stat fin, part;
  const bool has_final = Exists(final_path(), &fin), has_part = Exists(part_path(), &part);
  if (has_final) {
    // A finished item. Both names on one file (hard-linked by hand, or a
    // copy made with cp -l) are one item: keep the final name.
    if (has_part && (part.st_ino != fin.st_ino || part.st_dev != fin.st_dev))
      return Error(Code::kCorrupt, final_path() + " and " + part_path() + " both exist and are different files");
    data_.reset(::open(final_path().c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!data_) return ErrnoError(final_path(), errno);
    if (has_part && ::unlink(part_path().c_str()) != 0 && errno != ENOENT) return ErrnoError(part_path(), errno);
  } else {
    data_.reset(::open(part_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!data_) return ErrnoError(part_path(), errno);
  }
  rec_.reset(::open(records_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!rec_) return ErrnoError(records_path(), errno);
  return Status::Ok();
}

Status ChunkStore::Recover() {
  CM_ASSIGN_OR_RETURN(const uint64_t rec_size, FileSize(rec_.get(), records_path()));
  CM_ASSIGN_OR_RETURN(const uint64_t data_size, FileSize(data_.get(), part_path()));
  const uint64_t entries = rec_size / kChunkHeaderSize;
  uint64_t good = 0;
  std::string header(kChunkHeaderSize, '\0'), payload;
  for (; good < entries; ++good) {
    CM_ASSIGN_OR_RETURN(size_t n, PreadFull(rec_.get(), header.data(), header.size(), good * kChunkHeaderSize));
    if (n != header.size()) break;
    auto h = push::ParseChunkHeader(header);
    if (!h.ok()) break;  // a partial or lost header: damage
    // A well-formed record that is not of this item, or not signed by this
    // key, is no crash damage: someone else's files, or the base's key
    // changed. Refuse rather than truncate what another key may still check.
    if (h->job != job_ || h->item != item_)
      return Error(Code::kCorrupt, records_path() + " holds records of job " + h->job + " item " +
                                       std::to_string(h->item));
    if (h->key_id != key_id_)
      return Error(Code::kAuth, records_path() + " holds records signed with another key (key id " +
                                    ToHex(h->key_id.data(), h->key_id.size()) + ")");
    if (!verifier_.CheckHeader(*h).ok()) break;
    if (h->offset + h->payload_length > data_size) break;
    payload.resize(h->payload_length);
    CM_ASSIGN_OR_RETURN(n, PreadFull(data_.get(), payload.data(), payload.size(), h->offset));
    if (n != payload.size() || !verifier_.Check(*h, payload).ok()) break;
  }
  const push::ChunkCursor c = verifier_.cursor();
  recovery_.dropped_records = (rec_size + kChunkHeaderSize - 1) / kChunkHeaderSize - good;
  recovery_.dropped_data_bytes = data_size > c.offset ? data_size - c.offset : 0;
  if (rec_size != good * kChunkHeaderSize || data_size != c.offset) {
    CM_RETURN_IF_ERROR(Truncate(data_.get(), c.offset, part_path()));
    CM_RETURN_IF_ERROR(Truncate(rec_.get(), good * kChunkHeaderSize, records_path()));
    CM_RETURN_IF_ERROR(SyncBoth());
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    count_ = good;
    cursor_ = c;
  }
  if (c.ended) return Finish();
  struct stat st;
  if (Exists(final_path(), &st)) return Unfinish();
  return Status::Ok();
}

Status ChunkStore::SyncBoth() {
  CM_RETURN_IF_ERROR(DataSync(data_.get(), part_path()));
  return DataSync(rec_.get(), records_path());
}

// Both files synced, then .part renamed to the final name (atomic: it
// appears whole or not at all; the file, and a tail -f on it, stay the same).
Status ChunkStore::Finish() {
  CM_RETURN_IF_ERROR(SyncBoth());
  struct stat st;
  if (!Exists(final_path(), &st)) {
    if (::rename(part_path().c_str(), final_path().c_str()) != 0) return ErrnoError(final_path(), errno);
    CM_RETURN_IF_ERROR(FsyncDir(dir_));
  }
  std::lock_guard<std::mutex> l(mu_);
  complete_ = true;
  cv_.notify_all();
  return Status::Ok();
}

// The final name exists but the records do not end (the files were damaged
// after completion): the item is unfinished again, under .part.
Status ChunkStore::Unfinish() {
  if (::rename(final_path().c_str(), part_path().c_str()) != 0) return ErrnoError(part_path(), errno);
  return FsyncDir(dir_);
}

Status ChunkStore::CheckHeader(const ChunkHeader& h) const {
  std::lock_guard<std::mutex> l(append_mu_);
  return verifier_.CheckHeader(h);
}

Status ChunkStore::Append(std::string_view record) {
  CM_ASSIGN_OR_RETURN(ChunkHeader h, push::ParseChunkHeader(record));
  return Append(h, record.substr(kChunkHeaderSize));
}

Status ChunkStore::Append(const ChunkHeader& h, std::string_view payload) {
  std::lock_guard<std::mutex> l(append_mu_);
  push::ChunkVerifier v = verifier_;
  CM_RETURN_IF_ERROR(v.Check(h, payload));
  const bool sync = opts_.sync == ChunkSync::kEveryRecord;
  const uint64_t rec_at = h.index * kChunkHeaderSize;
  auto undo = [&](Status st) {
    // Best effort: a later Append rewrites the same places anyway.
    (void)Truncate(rec_.get(), rec_at, records_path());
    (void)Truncate(data_.get(), h.offset, part_path());
    return st;
  };
  Status st = PwriteFull(data_.get(), payload.data(), payload.size(), h.offset);
  if (st.ok() && sync) st = DataSync(data_.get(), part_path());
  if (!st.ok()) return undo(st);
  CrashPoint("chunk_store.payload_written");
  const std::string header = push::EncodeChunkHeader(h);
  st = PwriteFull(rec_.get(), header.data(), header.size(), rec_at);
  if (st.ok() && sync) st = DataSync(rec_.get(), records_path());
  if (!st.ok()) return undo(st);
  verifier_ = v;
  {
    std::lock_guard<std::mutex> g(mu_);
    count_ = h.index + 1;
    cursor_ = v.cursor();
  }
  cv_.notify_all();
  // The END record is stored; if completing fails, Open completes it.
  return h.end() ? Finish() : Status::Ok();
}

Result<ChunkRecords> ChunkStore::Read(uint64_t from, size_t max_bytes) const {
  ChunkRecords out;
  out.first = from;
  uint64_t count;
  {
    std::lock_guard<std::mutex> l(mu_);
    count = count_;
    out.ended = cursor_.ended;
  }
  if (from >= count) {
    if (out.ended)
      return Error(Code::kNotFound, "item " + std::to_string(item_) + " of job " + job_ + " ended at " +
                                        std::to_string(count) + " records; record " + std::to_string(from) +
                                        " asked for");
    return out;
  }
  // Records below `count` are immutable: read them without the lock.
  std::string header(kChunkHeaderSize, '\0');
  for (uint64_t i = from; i < count; ++i) {
    CM_ASSIGN_OR_RETURN(size_t n, PreadFull(rec_.get(), header.data(), header.size(), i * kChunkHeaderSize));
    if (n != header.size()) return Error(Code::kCorrupt, records_path() + ": shorter than its records");
    CM_ASSIGN_OR_RETURN(ChunkHeader h, push::ParseChunkHeader(header));
    if (out.count > 0 && out.bytes.size() + h.record_size() > max_bytes) break;
    const size_t at = out.bytes.size();
    out.bytes.append(header);
    out.bytes.resize(at + h.record_size());
    CM_ASSIGN_OR_RETURN(n, PreadFull(data_.get(), out.bytes.data() + at + kChunkHeaderSize, h.payload_length,
                                     h.offset));
    if (n != h.payload_length) return Error(Code::kCorrupt, part_path() + ": shorter than its records");
    ++out.count;
  }
  return out;
}

uint64_t ChunkStore::WaitForRecords(uint64_t index, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, timeout, [&] { return count_ > index || cursor_.ended; });
  return count_;
}

push::ChunkCursor ChunkStore::cursor() const {
  std::lock_guard<std::mutex> l(mu_);
  return cursor_;
}

uint64_t ChunkStore::record_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return count_;
}

bool ChunkStore::complete() const {
  std::lock_guard<std::mutex> l(mu_);
  return complete_;
}

}  // namespace cm::pushrun
