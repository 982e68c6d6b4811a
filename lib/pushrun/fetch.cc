#include "pushrun/fetch.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

#include "http/client.h"
#include "pack/assignment_format.h"
#include "pack/keys.h"
#include "push/chunk_plan.h"
#include "push/chunked_file.h"
#include "push/relay_core.h"
#include "util/file_util.h"
#include "util/log.h"

namespace cm::pushrun {

std::string ContentUrl(const std::string& base, uint64_t serial) {
  return base + "/v1/content/" + std::to_string(serial);
}

std::shared_ptr<push::HeldContent> Fetcher::held() const {
  std::lock_guard<std::mutex> l(mu_);
  return held_;
}

uint64_t Fetcher::verified() const {
  std::lock_guard<std::mutex> l(mu_);
  if (file_) return file_->complete() ? covered_ : file_->verified();
  return held_ ? covered_ : 0;
}

uint64_t Fetcher::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return held_ ? held_->size() : 0;
}

bool Fetcher::complete() const {
  std::lock_guard<std::mutex> l(mu_);
  if (file_) return file_->complete();
  return held_ != nullptr;
}

bool Fetcher::OpenExisting() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (file_ && file_->complete()) return true;
  }
  // Checked without mu_: hashing a large file must not block held() and
  // complete() callers, which see the file only once it has checked.
  UniqueFd fd(::open(t_.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno != ENOENT) log::Warn(ErrnoError(t_.path + ": not used", errno).message());
    return false;
  }
  uint64_t covered = 0;
  auto file = OpenChecked(fd.get(), &covered);
  if (!file.ok()) {
    log::Warn(t_.path + ": not used (it did not arrive through a checked fetch?): " + file.status().message());
    return false;
  }
  std::lock_guard<std::mutex> l(mu_);
  covered_ = covered;
  file_ = std::move(*file);
  held_ = file_;
  return true;
}

// The key a file is checked with: t.pub_key's, or none when unsigned files
// are allowed and this one's header (read by `header`) says it is unsigned.
static Result<std::optional<pack::PublicKey>> KeyFor(const FetchTarget& t,
                                              const std::function<Result<std::string>()>& header) {
  std::optional<pack::PublicKey> key;
  if (t.pub_key.empty()) return key;
  CM_ASSIGN_OR_RETURN(key, pack::LoadPublicKey(t.pub_key));
  if (!t.allow_unsigned) return key;
  CM_ASSIGN_OR_RETURN(std::string bytes, header());
  pack::Header h;
  if (pack::DecodeHeader(bytes, &h).ok() && !(h.flags & pack::kFlagSigned)) key.reset();
  return key;
}

Result<std::shared_ptr<push::ChunkedFile>> Fetcher::OpenChecked(int fd, uint64_t* covered) const {
  struct stat sb;
  if (::fstat(fd, &sb) != 0) return ErrnoError("fstat", errno);
  if (!S_ISREG(sb.st_mode)) return Error(Code::kFailure, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(sb.st_size);
  auto read = [&](const push::ByteRange& r) -> Result<std::string> {
    if (r.end > size) return Error(Code::kCorrupt, "file is " + std::to_string(size) + " bytes, shorter than its header says");
    std::string b(r.size(), '\0');
    CM_ASSIGN_OR_RETURN(size_t n, PreadFull(fd, b.data(), b.size(), r.begin));
    b.resize(n);
    return b;
  };
  CM_ASSIGN_OR_RETURN(std::optional<pack::PublicKey> key, KeyFor(t_, [&] { return read({0, std::min<uint64_t>(size, 256)}); }));
  CM_ASSIGN_OR_RETURN(push::LoadedPlan loaded, push::LoadChunkPlan(read, key ? &*key : nullptr, t_.limits));
  if (loaded.plan.serial() != t_.serial)
    return Error(Code::kCorrupt, "serial " + std::to_string(loaded.plan.serial()) + " where " +
                                     std::to_string(t_.serial) + " was expected");
  if (loaded.plan.file_size() != size)
    return Error(Code::kCorrupt, "file is " + std::to_string(size) + " bytes; its header says " +
                                     std::to_string(loaded.plan.file_size()));
  *covered = loaded.plan.covered_end() - loaded.plan.covered_begin();
  // Checks the final file again from its own descriptor, every chunk included.
  CM_ASSIGN_OR_RETURN(auto file,
                      push::ChunkedFile::Open(t_.path, std::move(loaded.plan), loaded.header, loaded.tail, t_.free_space));
  if (!file->complete()) return Error(Code::kFailure, "vanished while being checked");
  return std::shared_ptr<push::ChunkedFile>(std::move(file));
}

namespace {

Result<std::string> GetRange(const std::string& url, uint64_t begin, uint64_t end, const FetchTarget& t,
                             const std::atomic<bool>* cancel) {
  std::string out;
  out.reserve(end - begin);  // bounded by the caller (PlanLimits)
  http::FetchOptions fo;
  fo.idle_timeout = std::chrono::milliseconds(static_cast<int64_t>(t.idle_timeout_s * 1000));
  fo.connect_timeout = std::chrono::milliseconds(3000);
  fo.cancel = cancel;
  Status st = http::FetchRange(
      url, begin, end - 1,
      [&](std::string_view b) {
        if (b.size() > end - begin - out.size())
          return Error(Code::kCorrupt, url + ": more bytes than the range asked for");
        out.append(b);
        return Status::Ok();
      },
      fo);
  if (!st.ok()) return st;
  if (out.size() != end - begin) return Error(Code::kIo, url + ": short range");
  return out;
}

}  // namespace

Status Fetcher::Begin(const std::string& url, const std::atomic<bool>* cancel, push::FetchFault* fault) {
  bool read_failed = false;
  auto read = [&](const push::ByteRange& r) {
    auto got = GetRange(url, r.begin, r.end, t_, cancel);
    read_failed = read_failed || !got.ok();
    return got;
  };
  auto k = KeyFor(t_, [&] { return read({0, 256}); });
  if (!k.ok()) {
    *fault = read_failed ? push::FetchFault::kSource : push::FetchFault::kLocal;  // else our key file
    return Status(k.status().code(), url + ": " + k.status().message());
  }
  std::optional<pack::PublicKey> key = *k;
  bool admit_failed = false;
  auto admit = [&](const push::HeadAndTail& r) {
    Status st = push::CheckSpaceFor(t_.path, r.file_size(), t_.free_space);
    admit_failed = !st.ok();
    return st;
  };
  auto loaded = push::LoadChunkPlan(read, key ? &*key : nullptr, t_.limits, admit);
  if (!loaded.ok()) {
    *fault = admit_failed                                  ? push::FetchFault::kLocal
             : loaded.status().code() == Code::kAuth && !read_failed ? push::FetchFault::kAuth
                                                                     : push::FetchFault::kSource;
    return Status(loaded.status().code(), url + ": " + loaded.status().message());
  }
  push::ChunkPlan& plan = loaded->plan;
  if (plan.serial() != t_.serial)
    return Error(Code::kCorrupt, url + ": serial " + std::to_string(plan.serial()) + " where " +
                                     std::to_string(t_.serial) + " was asked for");
  uint64_t covered = plan.covered_end() - plan.covered_begin();
  auto file = push::ChunkedFile::Open(t_.path, std::move(plan), loaded->header, loaded->tail, t_.free_space);
  if (!file.ok()) {
    *fault = push::FetchFault::kLocal;  // the spool: no space, an I/O error, a file in the way
    return file.status();
  }
  std::lock_guard<std::mutex> l(mu_);
  covered_ = covered;
  file_ = std::shared_ptr<push::ChunkedFile>(std::move(*file));
  held_ = file_;
  return Status::Ok();
}

Status Fetcher::FetchFrom(const std::string& source_base, const std::atomic<bool>* cancel,
                          const std::function<void()>& on_progress, push::FetchFault* fault_out) {
  push::FetchFault ignored;
  push::FetchFault* fault = fault_out ? fault_out : &ignored;
  *fault = push::FetchFault::kSource;
  if (complete()) return Status::Ok();
  const std::string url = ContentUrl(source_base, t_.serial);
  std::shared_ptr<push::ChunkedFile> file;
  {
    std::lock_guard<std::mutex> l(mu_);
    file = file_;
  }
  if (!file) {
    CM_RETURN_IF_ERROR(Begin(url, cancel, fault));
    {
      std::lock_guard<std::mutex> l(mu_);
      file = file_;
    }
    if (on_progress) on_progress();  // the chunk table is known: the bytes can be served and mirrored
  }
  if (file->complete()) return Status::Ok();
  uint64_t offset = file->watermark();
  const uint64_t end = file->plan().covered_end();
  http::FetchOptions fo;
  fo.idle_timeout = std::chrono::milliseconds(static_cast<int64_t>(t_.idle_timeout_s * 1000));
  fo.connect_timeout = std::chrono::milliseconds(3000);
  fo.cancel = cancel;
  uint64_t last_verified = file->verified();
  bool local = false;
  Status st = http::FetchRange(
      url, offset, end - 1,
      [&](std::string_view bytes) -> Status {
        Status a = file->Append(offset, bytes);
        if (!a.ok()) {
          local = a.code() != Code::kCorrupt;  // a bad chunk is the source's; a write error ours
          return a;
        }
        offset += bytes.size();
        if (on_progress && file->verified() != last_verified) {
          last_verified = file->verified();
          on_progress();
        }
        return Status::Ok();
      },
      fo);
  if (file->complete()) {
    if (on_progress) on_progress();
    return Status::Ok();
  }
  if (st.ok()) return Error(Code::kIo, url + ": ended before the file was complete");
  if (local) *fault = push::FetchFault::kLocal;
  return st;
}

}  // namespace cm::pushrun
