#include "jobrun/record_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <optional>

#include "util/json.h"
#include "util/json_value.h"

namespace cm::jobrun {

namespace {

// A name safe as one path component: [A-Za-z0-9._-], at most 100, never "." or "..".
std::string SafeName(const std::string& name) {
  std::string out;
  for (char c : name.substr(0, 100)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-';
    out += ok ? c : '_';
  }
  if (out.empty() || out == "." || out == "..") out = "item";
  return out;
}

}  // namespace

RecordLog::~RecordLog() {
  for (auto& [item, f] : items_) {
    if (f.fd >= 0) ::close(f.fd);
  }
}

Status RecordLog::Materialize(std::string_view record) {
  CM_ASSIGN_OR_RETURN(push::ChunkHeader h, push::ParseChunkHeader(record));
  if (h.item == 0) return Status::Ok();
  std::string_view payload = record.substr(push::kChunkHeaderSize);
  if (h.index == 0) {
    auto meta = ParseJson(payload);
    ItemInfo info;
    info.id = h.item;
    if (meta.ok() && meta->is_object()) {
      info.kind = meta->Str("kind");
      info.name = meta->Str("name");
      info.arg = meta->Str("arg");
    }
    if (!items_dir_.empty() && info.kind != "command") {
      info.path = items_dir_ + "/" + std::to_string(h.item) + "-" + SafeName(info.name);
    }
    info_.push_back(info);
  }
  if (h.end()) {
    for (auto it = info_.rbegin(); it != info_.rend(); ++it) {
      if (it->id == h.item) {
        it->ended = true;
        break;
      }
    }
  }
  if (items_dir_.empty()) return Status::Ok();
  ItemFile& f = items_[h.item];
  if (h.index == 0) {
    if (info_.back().path.empty()) return Status::Ok();  // a command: nothing to write
    f.final_path = info_.back().path;
    f.part = info_.back().kind == "stream" ? f.final_path : f.final_path + ".part";
    f.meta_len = payload.size();
    if (f.fd >= 0) ::close(f.fd);
    f.fd = ::open(f.part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) return ErrnoError(f.part, errno);
    if (!h.end()) return Status::Ok();
    payload = {};
  }
  if (f.fd < 0) return Status::Ok();  // a command, or its first record is not ours (cannot happen in a checked log)
  uint64_t at = h.offset + (h.index == 0 ? payload.size() : 0) - f.meta_len;
  size_t done = 0;
  while (done < payload.size()) {
    ssize_t n = ::pwrite(f.fd, payload.data() + done, payload.size() - done, static_cast<off_t>(at + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(f.part, errno);
    }
    done += static_cast<size_t>(n);
  }
  if (h.end()) {
    if (::fsync(f.fd) != 0) return ErrnoError(f.part, errno);
    ::close(f.fd);
    f.fd = -1;
    if (f.part != f.final_path && ::rename(f.part.c_str(), f.final_path.c_str()) != 0) return ErrnoError(f.final_path, errno);
  }
  return Status::Ok();
}

Result<std::unique_ptr<RecordLog>> RecordLog::Open(const std::string& path, const std::string& job,
                                                   const pack::PublicKey& key, const std::string& items_dir) {
  if (!push::IsValidChunkJobId(job)) return Error(Code::kUsage, "bad job id: " + job);
  if (!items_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(items_dir, ec);  // written again from the checked log
    std::filesystem::create_directories(items_dir, ec);
    if (ec) return Error(Code::kIo, items_dir + ": " + ec.message());
  }
  // Re-check what the file holds; cut it after the last good record.
  uint64_t good = 0;
  std::unique_ptr<RecordLog> out;
  {
    CM_ASSIGN_OR_RETURN(auto raw, JobLog::Open(path));
    uint64_t size = raw->size();
    out.reset(new RecordLog(nullptr, job, key));
    out->items_dir_ = items_dir;
    uint64_t at = 0;
    while (at < size) {
      auto head = raw->Read(at, push::kChunkHeaderSize, std::chrono::milliseconds(0));
      if (!head.ok() || head->size() < push::kChunkHeaderSize) break;
      auto h = push::ParseChunkHeader(*head);
      if (!h.ok() || at + h->record_size() > size) break;
      auto record = raw->Read(at, h->record_size(), std::chrono::milliseconds(0));
      if (!record.ok() || record->size() != h->record_size()) break;
      push::ChunkVerifier* v = nullptr;
      if (!out->CheckAndNote(*record, &v).ok()) break;
      CM_RETURN_IF_ERROR(out->Materialize(*record));
      at += h->record_size();
      good = at;
    }
  }
  if (::truncate(path.c_str(), static_cast<off_t>(good)) != 0) return ErrnoError(path, errno);
  CM_ASSIGN_OR_RETURN(out->log_, JobLog::Open(path));
  if (out->complete()) out->log_->Finish();
  return out;
}

Status RecordLog::CheckAndNote(std::string_view record, push::ChunkVerifier** vout) {
  CM_ASSIGN_OR_RETURN(push::ChunkHeader h, push::ParseChunkHeader(record));
  auto it = verifiers_.find(h.item);
  // Checked on a copy of the item's verifier: a failing record changes nothing.
  push::ChunkVerifier v = it != verifiers_.end() ? it->second : push::ChunkVerifier(key_, job_, h.item);
  CM_RETURN_IF_ERROR(v.Check(record));
  it = verifiers_.insert_or_assign(h.item, std::move(v)).first;
  if (h.item == 0 && h.index == 0) object_ = std::string(record.substr(push::kChunkHeaderSize));
  *vout = &it->second;
  return Status::Ok();
}

Status RecordLog::Accept(uint64_t at, std::string_view records) {
  std::lock_guard<std::mutex> lock(mu_);
  if (at != log_->size()) return Error(Code::kBusy, "stale: the log is at " + std::to_string(log_->size()));
  if (log_->complete() && !records.empty()) return Error(Code::kOrder, "records after the job's end");
  while (!records.empty()) {
    CM_ASSIGN_OR_RETURN(size_t n, push::NextChunkRecordSize(records));
    if (n == 0 || n > records.size()) return Error(Code::kCorrupt, "a record cut short");
    std::string_view record = records.substr(0, n);
    CM_ASSIGN_OR_RETURN(push::ChunkHeader h, push::ParseChunkHeader(record));
    auto before = verifiers_.find(h.item);
    std::optional<push::ChunkVerifier> saved;
    if (before != verifiers_.end()) saved = before->second;
    push::ChunkVerifier* v = nullptr;
    CM_RETURN_IF_ERROR(CheckAndNote(record, &v));
    if (Status w = log_->Append(record); !w.ok()) {
      // Not kept: the item's verifier goes back to where the log is.
      if (saved) verifiers_.insert_or_assign(h.item, std::move(*saved));
      else verifiers_.erase(h.item);
      if (h.item == 0 && h.index == 0) object_.clear();
      return w;
    }
    CM_RETURN_IF_ERROR(Materialize(record));
    records.remove_prefix(n);
    if (h.item == 0 && v->cursor().ended) log_->Finish();
  }
  return Status::Ok();
}

Result<std::string> RecordLog::Read(uint64_t from, size_t max, std::chrono::milliseconds wait) const {
  CM_ASSIGN_OR_RETURN(std::string bytes, log_->Read(from, std::max(max, push::kMaxChunkRecord), wait));
  // Whole records only, about `max` of them.
  size_t at = 0;
  while (at < bytes.size()) {
    auto n = push::NextChunkRecordSize(std::string_view(bytes).substr(at));
    if (!n.ok()) return n.status();
    if (*n == 0 || at + *n > bytes.size()) break;
    if (at > 0 && at + *n > max) break;
    at += *n;
  }
  bytes.resize(at);
  return bytes;
}

uint64_t RecordLog::size() const { return log_->size(); }

std::vector<RecordLog::ItemInfo> RecordLog::Items() const {
  std::lock_guard<std::mutex> lock(mu_);
  return info_;
}
bool RecordLog::complete() const { return log_ ? log_->complete() : verifiers_.count(0) && verifiers_.at(0).cursor().ended; }

std::string RecordLog::object_json() const {
  std::lock_guard<std::mutex> lock(mu_);
  return object_;
}

Result<push::ChunkSigner*> RecordWriter::Signer(uint32_t item) {
  auto it = signers_.find(item);
  if (it == signers_.end()) {
    CM_ASSIGN_OR_RETURN(push::ChunkSigner s, push::ChunkSigner::Create(key_, job_, item));
    it = signers_.emplace(item, std::move(s)).first;
  }
  return &it->second;
}

Result<std::string> RecordWriter::Object(const std::string& object_json) {
  CM_ASSIGN_OR_RETURN(push::ChunkSigner * s, Signer(0));
  if (s->cursor().index != 0) return Error(Code::kUsage, "the job object is written once");
  return s->Append(object_json);
}

Result<std::string> RecordWriter::Begin(uint32_t item, const std::string& kind, const std::string& name,
                                        const std::string& arg) {
  if (item == 0) return Error(Code::kUsage, "item 0 is the job's own");
  CM_ASSIGN_OR_RETURN(push::ChunkSigner * s, Signer(item));
  if (s->cursor().index != 0) return Error(Code::kUsage, "item " + std::to_string(item) + " has begun");
  JsonObject meta;
  meta.Str("kind", kind).Str("name", name);
  if (!arg.empty()) meta.Str("arg", arg);
  return s->Append(meta.Build());
}

Result<std::string> RecordWriter::Data(uint32_t item, std::string_view bytes, size_t piece) {
  if (item == 0) return Error(Code::kUsage, "item 0 is the job's own");
  CM_ASSIGN_OR_RETURN(push::ChunkSigner * s, Signer(item));
  piece = std::clamp<size_t>(piece, 1, push::kMaxChunkPayload);
  std::string out;
  while (!bytes.empty()) {
    size_t n = std::min(piece, bytes.size());
    CM_ASSIGN_OR_RETURN(std::string r, s->Append(bytes.substr(0, n)));
    out += r;
    bytes.remove_prefix(n);
  }
  return out;
}

Result<std::string> RecordWriter::EndItem(uint32_t item) {
  if (item == 0) return Error(Code::kUsage, "item 0 is the job's own");
  CM_ASSIGN_OR_RETURN(push::ChunkSigner * s, Signer(item));
  return s->End();
}

Result<std::string> RecordWriter::EndJob() {
  CM_ASSIGN_OR_RETURN(push::ChunkSigner * s, Signer(0));
  return s->End();
}

}  // namespace cm::jobrun
