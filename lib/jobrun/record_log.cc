#include "jobrun/record_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace cm::jobrun {

Result<std::unique_ptr<RecordLog>> RecordLog::Open(const std::string& path, const std::string& job,
                                                   const pack::PublicKey& key) {
  if (!push::IsValidChunkJobId(job)) return Error(Code::kUsage, "bad job id: " + job);
  // Re-check what the file holds; cut it after the last good record.
  uint64_t good = 0;
  std::unique_ptr<RecordLog> out;
  {
    CM_ASSIGN_OR_RETURN(auto raw, JobLog::Open(path));
    uint64_t size = raw->size();
    out.reset(new RecordLog(nullptr, job, key));
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
  if (it == verifiers_.end()) it = verifiers_.emplace(h.item, push::ChunkVerifier(key_, job_, h.item)).first;
  CM_RETURN_IF_ERROR(it->second.Check(record));
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
    // Check on a copy of the verifier state: a failing record changes nothing.
    auto saved = verifiers_;
    std::string saved_object = object_;
    push::ChunkVerifier* v = nullptr;
    Status s = CheckAndNote(record, &v);
    if (!s.ok()) {
      verifiers_ = std::move(saved);
      object_ = std::move(saved_object);
      return s;
    }
    Status w = log_->Append(record);
    if (!w.ok()) {
      verifiers_ = std::move(saved);
      object_ = std::move(saved_object);
      return w;
    }
    records.remove_prefix(n);
    auto job_end = verifiers_.find(0);
    if (job_end != verifiers_.end() && job_end->second.cursor().ended) log_->Finish();
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
