#include "push/chunked_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <vector>

namespace cm::push {
namespace {

// True when the bytes of chunk i in fd hash to the table's entry (false for
// a short read: the chunk is not all there).
Result<bool> ChunkChecks(int fd, const ChunkPlan& plan, uint64_t i, std::vector<char>* buf) {
  const ByteRange r = plan.ChunkRange(i);
  Hasher h;
  for (uint64_t off = r.begin; off < r.end;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(r.end - off, buf->size()));
    auto got = PreadFull(fd, buf->data(), n, off);
    if (!got.ok()) return got.status();
    if (*got != n) return false;
    h.Update(buf->data(), n);
    off += n;
  }
  return h.Finish() == plan.hashes()[i];
}

// How many chunks, from the first, the file holds intact.
Result<uint64_t> GoodChunks(int fd, const ChunkPlan& plan) {
  std::vector<char> buf(std::min<size_t>(plan.chunk_size(), 1 << 20));
  uint64_t i = 0;
  for (; i < plan.chunk_count(); ++i) {
    CM_ASSIGN_OR_RETURN(bool ok, ChunkChecks(fd, plan, i, &buf));
    if (!ok) break;
  }
  return i;
}

// True when fd holds exactly `want` at offset.
Result<bool> Holds(int fd, uint64_t offset, std::string_view want) {
  std::string got(want.size(), '\0');
  auto n = PreadFull(fd, got.data(), got.size(), offset);
  if (!n.ok()) return n.status();
  return *n == want.size() && got == want;
}

// The existing final file is this assignment, complete and intact.
Result<bool> IsCompleteCopy(int fd, const ChunkPlan& plan, std::string_view header, std::string_view tail) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("fstat", errno);
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != plan.file_size()) return false;
  CM_ASSIGN_OR_RETURN(bool head_ok, Holds(fd, 0, header));
  CM_ASSIGN_OR_RETURN(bool tail_ok, Holds(fd, plan.covered_end(), tail));
  if (!head_ok || !tail_ok) return false;
  CM_ASSIGN_OR_RETURN(uint64_t good, GoodChunks(fd, plan));
  return good == plan.chunk_count();
}

}  // namespace

Result<uint64_t> FreeSpace(const std::string& dir) {
  struct statvfs v;
  if (::statvfs(dir.c_str(), &v) != 0) return ErrnoError(dir, errno);
  return uint64_t{v.f_bavail} * v.f_frsize;
}

Status CheckSpaceFor(const std::string& final_path, uint64_t file_size, const FreeSpaceFn& free_space) {
  const std::string dir = DirName(final_path);
  uint64_t have_part = 0;  // a .part is reused (or truncated) in place
  struct stat st;
  if (::stat((final_path + ".part").c_str(), &st) == 0 && S_ISREG(st.st_mode))
    have_part = static_cast<uint64_t>(st.st_blocks) * 512;
  const uint64_t need = file_size > have_part ? file_size - have_part : 0;
  if (need == 0) return Status::Ok();
  CM_ASSIGN_OR_RETURN(uint64_t have, free_space ? free_space(dir) : FreeSpace(dir));
  if (need > have)
    return Error(Code::kNoSpace, dir + ": no space: need " + std::to_string(need) + ", have " + std::to_string(have));
  return Status::Ok();
}

ChunkedFile::ChunkedFile(std::string final_path, ChunkPlan plan)
    : final_path_(std::move(final_path)), plan_(std::move(plan)), watermark_(plan_.covered_begin()) {}

ChunkedFile::~ChunkedFile() = default;

Result<std::unique_ptr<ChunkedFile>> ChunkedFile::Open(const std::string& final_path, ChunkPlan plan,
                                                       std::string_view header, std::string_view tail,
                                                       const FreeSpaceFn& free_space) {
  if (header != plan.header_bytes())
    return Error(Code::kFailure, final_path + ": the header given is not the one the chunk plan was parsed from");
  if (tail.size() != plan.tail().size() || tail.substr(0, pack::kTrailerSize) != plan.trailer_bytes() ||
      HashBytes(tail.data() + pack::kTrailerSize, tail.size() - pack::kTrailerSize) != plan.header().table_hash)
    return Error(Code::kFailure, final_path + ": the tail given is not the one the chunk plan was parsed from");
  std::unique_ptr<ChunkedFile> f(new ChunkedFile(final_path, std::move(plan)));

  UniqueFd existing(::open(final_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (existing) {
    CM_ASSIGN_OR_RETURN(bool same, IsCompleteCopy(existing.get(), f->plan_, header, tail));
    if (!same) return Error(Code::kFailure, final_path + ": exists and is not this assignment");
    f->fd_ = std::move(existing);
    f->watermark_.store(f->plan_.covered_end());
    f->received_ = f->plan_.covered_end();
    f->complete_ = true;
    return f;
  }
  if (errno != ENOENT) return ErrnoError(final_path, errno);
  CM_RETURN_IF_ERROR(f->OpenPart(header, tail, free_space));
  return f;
}

Status ChunkedFile::OpenPart(std::string_view header, std::string_view tail, const FreeSpaceFn& free_space) {
  const std::string part = part_path();
  CM_RETURN_IF_ERROR(CheckSpaceFor(final_path_, plan_.file_size(), free_space));
  fd_.reset(::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd_) return ErrnoError(part, errno);
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return ErrnoError(part, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kFailure, part + ": not a regular file");
  uint64_t good = 0;
  bool resume = static_cast<uint64_t>(st.st_size) == plan_.file_size();
  if (resume) {
    CM_ASSIGN_OR_RETURN(resume, Holds(fd_.get(), 0, header));
  }
  if (resume) {
    auto g = GoodChunks(fd_.get(), plan_);
    if (!g.ok()) return Status(g.status().code(), part + ": " + g.status().message());
    good = *g;
  } else if (::ftruncate(fd_.get(), 0) != 0) {  // another assignment's or a half-made .part
    return ErrnoError(part, errno);
  }
  if (::ftruncate(fd_.get(), static_cast<off_t>(plan_.file_size())) != 0) return ErrnoError(part, errno);
  CM_RETURN_IF_ERROR(PwriteFull(fd_.get(), header.data(), header.size(), 0));
  CM_RETURN_IF_ERROR(PwriteFull(fd_.get(), tail.data(), tail.size(), plan_.covered_end()));
  const uint64_t w = good == 0 ? plan_.covered_begin() : plan_.ChunkRange(good - 1).end;
  watermark_.store(w);
  received_ = w;
  if (w == plan_.covered_end()) return Finalize();
  return Status::Ok();
}

Status ChunkedFile::Finalize() {
  Status st;
  const std::string part = part_path();
  if (::fsync(fd_.get()) != 0) {
    st = ErrnoError(part, errno);
  } else if (::rename(part.c_str(), final_path_.c_str()) != 0) {
    st = ErrnoError(final_path_, errno);
  } else {
    st = FsyncDir(DirName(final_path_));
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (st.ok())
    complete_ = true;
  else
    failure_ = st;
  cv_.notify_all();
  return st;
}

void ChunkedFile::SetWatermark(uint64_t w) {
  std::lock_guard<std::mutex> lk(mu_);
  watermark_.store(w, std::memory_order_release);
  cv_.notify_all();
}

void ChunkedFile::ResetPending() {
  received_ = watermark();
  pending_ = Hasher();
}

Status ChunkedFile::Append(uint64_t offset, std::string_view bytes) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!failure_.ok()) return failure_;
    if (complete_) return Status::Ok();
  }
  const uint64_t end_of_middle = plan_.covered_end();
  if (offset >= end_of_middle) return Status::Ok();  // the tail: held already
  if (bytes.size() > end_of_middle - offset) bytes = bytes.substr(0, end_of_middle - offset);
  const uint64_t w = watermark();
  if (offset + bytes.size() <= w) return Status::Ok();  // checked already
  if (offset < w) {
    bytes.remove_prefix(w - offset);
    offset = w;
  }
  if (offset == w && received_ > w) {
    ResetPending();  // a new source resumes at the watermark
  } else if (offset > received_) {
    return Error(Code::kFailure, "gap in " + part_path() + ": bytes at " + std::to_string(offset) +
                                     ", expected " + std::to_string(received_));
  } else if (offset < received_) {
    // Overlaps the half chunk received already: keep what we have (the chunk
    // hash decides whether it was right).
    uint64_t skip = std::min<uint64_t>(received_ - offset, bytes.size());
    bytes.remove_prefix(skip);
  }
  while (!bytes.empty()) {
    const uint64_t chunk = *plan_.ChunkOf(received_);
    const ByteRange r = plan_.ChunkRange(chunk);
    size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), r.end - received_));
    Status st = PwriteFull(fd_.get(), bytes.data(), take, received_);
    if (!st.ok()) {
      ResetPending();
      return Status(st.code(), part_path() + ": " + st.message());
    }
    pending_.Update(bytes.data(), take);
    received_ += take;
    bytes.remove_prefix(take);
    if (received_ < r.end) break;
    const bool match = pending_.Finish() == plan_.hashes()[chunk];
    pending_ = Hasher();
    if (!match) {
      bad_chunks_.fetch_add(1, std::memory_order_relaxed);
      received_ = r.begin;
      return Error(Code::kCorrupt, "chunk " + std::to_string(chunk) + " (bytes " + std::to_string(r.begin) + ".." +
                                       std::to_string(r.end) + ") does not match its hash; fetch again from " +
                                       std::to_string(r.begin));
    }
    SetWatermark(r.end);
  }
  if (watermark() == end_of_middle) return Finalize();
  return Status::Ok();
}

void ChunkedFile::Fail(Status why) {
  if (why.ok()) why = Error(Code::kFailure, "transfer abandoned");
  std::lock_guard<std::mutex> lk(mu_);
  if (complete_ || !failure_.ok()) return;
  failure_ = std::move(why);
  cv_.notify_all();
}

bool ChunkedFile::complete() const {
  std::lock_guard<std::mutex> lk(mu_);
  return complete_;
}

Status ChunkedFile::failure() const {
  std::lock_guard<std::mutex> lk(mu_);
  return failure_;
}

uint64_t ChunkedFile::HeldEnd(uint64_t offset, uint64_t w) const {
  const uint64_t size = plan_.file_size();
  if (offset >= size) return offset;
  if (offset >= plan_.covered_end()) return size;                        // the tail
  if (offset < w) return w == plan_.covered_end() ? size : w;            // header and checked middle
  return offset;
}

bool ChunkedFile::held(uint64_t offset) const { return HeldEnd(offset, watermark()) > offset; }

Result<size_t> ChunkedFile::ReadAt(uint64_t offset, std::span<char> out) const {
  const uint64_t end = HeldEnd(offset, watermark());
  if (end <= offset) return size_t{0};
  size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), end - offset));
  return ReadHeldBytes(fd_.get(), offset, out.first(n));
}

Result<bool> ChunkedFile::WaitFor(uint64_t offset, Deadline deadline) const {
  if (offset >= size())
    return Error(Code::kNotFound, "offset " + std::to_string(offset) + " is past the end (" +
                                      std::to_string(size()) + " bytes)");
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (held(offset)) return true;
    if (!failure_.ok()) return failure_;
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
      if (held(offset)) return true;
      if (!failure_.ok()) return failure_;
      return false;
    }
  }
}

}  // namespace cm::push
