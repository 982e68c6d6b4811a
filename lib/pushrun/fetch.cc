#include "pushrun/fetch.h"

#include <filesystem>

#include "http/client.h"
#include "pack/keys.h"
#include "push/chunk_plan.h"
#include "push/chunked_file.h"

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
  std::lock_guard<std::mutex> l(mu_);
  if (held_ && (!file_ || file_->complete())) return true;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(t_.path, ec)) return false;
  auto f = push::CompleteFile::Open(t_.path);
  if (!f.ok()) return false;
  // The covered size (what the scheduler counts) of a complete file.
  std::string header(256, '\0');
  if (auto n = (*f)->ReadAt(0, std::span<char>(header.data(), header.size())); !n.ok() || *n != 256) return false;
  auto ranges = push::HeadAndTailRanges(header);
  if (!ranges.ok()) return false;
  covered_ = ranges->tail.begin - ranges->head.end;
  held_ = std::shared_ptr<push::HeldContent>(std::move(*f));
  file_.reset();
  return true;
}

namespace {

Result<std::string> GetRange(const std::string& url, uint64_t begin, uint64_t end, const FetchTarget& t,
                             const std::atomic<bool>* cancel) {
  std::string out;
  http::FetchOptions fo;
  fo.idle_timeout = std::chrono::milliseconds(static_cast<int64_t>(t.idle_timeout_s * 1000));
  fo.connect_timeout = std::chrono::milliseconds(3000);
  fo.cancel = cancel;
  Status st = http::FetchRange(
      url, begin, end - 1,
      [&](std::string_view b) {
        out.append(b);
        return Status::Ok();
      },
      fo);
  if (!st.ok()) return st;
  if (out.size() != end - begin) return Error(Code::kIo, url + ": short range");
  return out;
}

}  // namespace

Status Fetcher::Begin(const std::string& url, const std::atomic<bool>* cancel) {
  auto header = GetRange(url, 0, 256, t_, cancel);
  if (!header.ok()) return header.status();
  auto ranges = push::HeadAndTailRanges(*header);
  if (!ranges.ok()) return ranges.status();
  auto tail = GetRange(url, ranges->tail.begin, ranges->tail.end, t_, cancel);
  if (!tail.ok()) return tail.status();
  std::optional<pack::PublicKey> key;
  if (!t_.pub_key.empty()) {
    auto k = pack::LoadPublicKey(t_.pub_key);
    if (!k.ok()) return k.status();
    key = *k;
  }
  auto plan = push::ParseChunkPlan(*header, *tail, key ? &*key : nullptr);
  if (!plan.ok()) return plan.status();
  if (plan->serial() != t_.serial)
    return Error(Code::kCorrupt, url + ": serial " + std::to_string(plan->serial()) + " where " +
                                     std::to_string(t_.serial) + " was asked for");
  uint64_t covered = plan->covered_end() - plan->covered_begin();
  auto file = push::ChunkedFile::Open(t_.path, std::move(*plan), *header, *tail);
  if (!file.ok()) return file.status();
  std::lock_guard<std::mutex> l(mu_);
  covered_ = covered;
  file_ = std::shared_ptr<push::ChunkedFile>(std::move(*file));
  held_ = file_;
  return Status::Ok();
}

Status Fetcher::FetchFrom(const std::string& source_base, const std::atomic<bool>* cancel,
                          const std::function<void()>& on_progress) {
  if (complete()) return Status::Ok();
  const std::string url = ContentUrl(source_base, t_.serial);
  std::shared_ptr<push::ChunkedFile> file;
  {
    std::lock_guard<std::mutex> l(mu_);
    file = file_;
  }
  if (!file) {
    CM_RETURN_IF_ERROR(Begin(url, cancel));
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
  Status st = http::FetchRange(
      url, offset, end - 1,
      [&](std::string_view bytes) -> Status {
        Status a = file->Append(offset, bytes);
        if (!a.ok()) return a;
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
  return st;
}

}  // namespace cm::pushrun
