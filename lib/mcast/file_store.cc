#include "mcast/file_store.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <sstream>
#include <vector>

namespace cm::mcast {

Result<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  auto s = std::unique_ptr<FileSource>(new FileSource);
  s->fd_ = UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!s->fd_) return ErrnoError(path, errno);
  struct stat st;
  if (fstat(s->fd_.get(), &st) != 0) return ErrnoError(path, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kUsage, path + ": not a regular file");
  s->size_ = static_cast<uint64_t>(st.st_size);
  s->available_ = s->size_;
  return s;
}

Result<std::unique_ptr<FileSource>> FileSource::OpenGrowing(const std::string& path, uint64_t final_size) {
  auto s = std::unique_ptr<FileSource>(new FileSource);
  s->fd_ = UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!s->fd_) return ErrnoError(path, errno);
  struct stat st;
  if (fstat(s->fd_.get(), &st) != 0) return ErrnoError(path, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kUsage, path + ": not a regular file");
  s->size_ = final_size;
  s->growing_ = true;
  s->Probe();
  return s;
}

FileSource::~FileSource() {
  stop_ = true;
  if (hasher_.joinable()) hasher_.join();
}

uint64_t FileSource::Probe() {
  struct stat st;
  if (fstat(fd_.get(), &st) == 0) Grow(std::min<uint64_t>(static_cast<uint64_t>(st.st_size), size_));
  return available_.load();
}

void FileSource::Grow(uint64_t n) {
  n = std::min(n, size_);
  uint64_t cur = available_.load();
  while (cur < n && !available_.compare_exchange_weak(cur, n)) {
  }
}

void FileSource::SetHash(const Hash256& h) {
  std::lock_guard<std::mutex> lock(mu_);
  if (hash_known_) return;
  hash_ = h;
  hash_known_ = true;
}

std::optional<Hash256> FileSource::Hash() {
  if (!hash_known_) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  return hash_;
}

std::string FileSource::hash_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hash_error_;
}

Status FileSource::Fault() {
  std::string e = hash_error();
  return e.empty() ? Status::Ok() : Error(Code::kIo, e);
}

uint64_t FileSource::Available() {
  uint64_t a = available_.load();
  return a < size_ && growing_ ? Probe() : a;
}

Status FileSource::Read(uint64_t offset, size_t n, uint8_t* out) {
  if (offset > size_ || n > size_ - offset) return Error(Code::kIo, "read past the end of the object");
  auto r = PreadFull(fd_.get(), out, n, offset);
  if (!r.ok()) return r.status();
  if (*r != n) return Error(Code::kIo, "short read: the file changed while being sent");
  return Status::Ok();
}

void FileSource::StartHashing() {
  if (hasher_.joinable() || hash_known_) return;
  hasher_ = std::thread([this] { HashLoop(); });
}

void FileSource::HashLoop() {
  // Below the sender's own thread: on a busy host the hash may take longer,
  // but the pacing thread must not lose its slot to it (the session does not
  // wait for the hash until its very end).
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
  Hasher h;
  std::vector<uint8_t> buf(1 << 20);
  uint64_t off = 0;
  while (off < size_ && !stop_) {
    uint64_t avail = growing_ ? Probe() : size_;
    if (avail <= off) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), avail - off));
    auto r = PreadFull(fd_.get(), buf.data(), want, off);
    if (!r.ok() || *r != want) {
      std::lock_guard<std::mutex> lock(mu_);
      hash_error_ = r.ok() ? "short read: the file shrank while being hashed" : r.status().ToString();
      return;
    }
    h.Update(buf.data(), want);
    off += want;
  }
  if (stop_) return;
  if (growing_) {
    struct stat st;
    if (fstat(fd_.get(), &st) == 0 && static_cast<uint64_t>(st.st_size) > size_) {
      std::lock_guard<std::mutex> lock(mu_);
      hash_error_ = "the file grew past its announced size";
      return;
    }
  }
  SetHash(h.Finish());
}

namespace {

// A partial object lives at DIR/.NAME.tmp.cm-part with a sidecar
// .NAME.tmp.cm-part.map: a header (magic, hash, size) and one 16-byte record
// (offset, length) per block written. A receiver killed or dropped mid-session
// leaves both; the next session for the same object resumes from them.
// Commit renames the part into place and removes the map; a hash mismatch
// removes both, so a retry starts clean.
//
// Hashes as it writes: the contiguous prefix is hashed from the bytes being
// written, ranges that land ahead of it (or come from the resumed part) are
// read back from the file once the prefix reaches them. Commit then only
// finishes the hash instead of reading the whole object back.
constexpr char kPartMagic[8] = {'C', 'M', 'P', 'A', 'R', 'T', '2', '\n'};
constexpr size_t kPartHeader = sizeof kPartMagic + 4 + 8;
// Written blocks are pushed to the disk in the background every this many
// bytes (sync_file_range), so the fsync before the rename has little left
// to write and does not sit between the last frame and the "complete".
constexpr uint64_t kWritebackEvery = 4 << 20;

class FileSink : public ObjectSink {
 public:
  ~FileSink() override = default;  // an unfinished part and its map stay for a resume

  Status Open(const std::string& final_path, uint32_t object_id, uint64_t size) {
    final_ = final_path;
    part_ = DirName(final_path) + "/." + BaseName(final_path) + ".tmp.cm-part";
    map_ = part_ + ".map";
    size_ = size;
    std::string header(kPartMagic, sizeof kPartMagic);
    for (int i = 0; i < 4; ++i) header += static_cast<char>(object_id >> (8 * i));
    for (int i = 0; i < 8; ++i) header += static_cast<char>(size >> (8 * i));
    if (TryResume(header)) return Status::Ok();
    resumed_.clear();
    ahead_.clear();
    part_fd_.reset();
    map_fd_.reset();
    // Whatever is at the temporary names (a stale part, or a symlink planted
    // to make us write outside DIR) is removed, never followed: the new files
    // are created exclusively and a name that reappears in between fails.
    unlink(part_.c_str());
    unlink(map_.c_str());
    part_fd_ = UniqueFd(open(part_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!part_fd_) return ErrnoError(part_, errno);
    if (ftruncate(part_fd_.get(), static_cast<off_t>(size)) != 0) return ErrnoError(part_, errno);
    map_fd_ = UniqueFd(open(map_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_APPEND | O_CLOEXEC, 0644));
    if (!map_fd_) return ErrnoError(map_, errno);
    return WriteFull(map_fd_.get(), header.data(), header.size());
  }

  Status Write(uint64_t offset, const uint8_t* data, size_t n) override {
    CM_RETURN_IF_ERROR(PwriteFull(part_fd_.get(), data, n, offset));
    uint8_t rec[16];
    for (int i = 0; i < 8; ++i) {
      rec[i] = static_cast<uint8_t>(offset >> (8 * i));
      rec[8 + i] = static_cast<uint8_t>(uint64_t(n) >> (8 * i));
    }
    CM_RETURN_IF_ERROR(WriteFull(map_fd_.get(), rec, sizeof rec));
    if ((unsynced_ += n) >= kWritebackEvery) {
      unsynced_ = 0;
      sync_file_range(part_fd_.get(), 0, 0, SYNC_FILE_RANGE_WRITE);  // start writeback, do not wait
    }
    if (offset < hashed_) {
      rewritten_ = true;  // hashed bytes changed: Commit hashes the whole file
    } else if (offset == hashed_) {
      hasher_.Update(data, n);
      hashed_ += n;
      return CatchUp();
    } else {
      auto& end = ahead_[offset];
      end = std::max<uint64_t>(end, offset + n);
    }
    return Status::Ok();
  }

  Status Commit(const Hash256& expected) override {
    CM_RETURN_IF_ERROR(CatchUp());
    Hash256 h;
    if (rewritten_ || hashed_ != size_) {
      auto full = HashFile(part_fd_.get());
      if (!full.ok()) return full.status();
      h = *full;
    } else {
      h = hasher_.Finish();
    }
    if (h != expected) {
      unlink(part_.c_str());
      unlink(map_.c_str());
      return Error(Code::kCorrupt, "hash mismatch");
    }
    if (fsync(part_fd_.get()) != 0) return ErrnoError(part_, errno);
    if (rename(part_.c_str(), final_.c_str()) != 0) return ErrnoError(final_, errno);
    unlink(map_.c_str());
    UniqueFd dir(open(DirName(final_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) fsync(dir.get());
    return Status::Ok();
  }

  std::vector<std::pair<uint64_t, uint64_t>> Resumed() const override { return resumed_; }

  void Discard() override {
    part_fd_.reset();
    map_fd_.reset();
    unlink(part_.c_str());
    unlink(map_.c_str());
  }

 private:
  // A part and map we may resume are our own plain files: not symlinks
  // (O_NOFOLLOW), not hard links to a file elsewhere, owned by us.
  static bool OwnPlainFile(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == geteuid();
  }

  bool TryResume(const std::string& header) {
    UniqueFd m(open(map_.c_str(), O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC));
    if (!m || !OwnPlainFile(m.get())) return false;
    std::string body;
    char buf[65536];
    for (;;) {
      ssize_t r = read(m.get(), buf, sizeof buf);
      if (r <= 0) break;
      body.append(buf, static_cast<size_t>(r));
    }
    if (body.size() < kPartHeader || body.compare(0, kPartHeader, header) != 0) return false;
    part_fd_ = UniqueFd(open(part_.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    struct stat st;
    if (!part_fd_ || !OwnPlainFile(part_fd_.get()) || fstat(part_fd_.get(), &st) != 0 ||
        static_cast<uint64_t>(st.st_size) != size_)
      return false;
    // Whole records only: a torn last record (killed mid-append) is dropped.
    size_t records = (body.size() - kPartHeader) / 16;
    for (size_t i = 0; i < records; ++i) {
      const auto* p = reinterpret_cast<const uint8_t*>(body.data() + kPartHeader + i * 16);
      uint64_t off = 0, len = 0;
      for (int j = 0; j < 8; ++j) {
        off |= uint64_t(p[j]) << (8 * j);
        len |= uint64_t(p[8 + j]) << (8 * j);
      }
      if (len == 0 || off > size_ || len > size_ - off) return false;
      resumed_.emplace_back(off, len);
      auto& end = ahead_[off];
      end = std::max(end, off + len);
    }
    map_fd_ = std::move(m);
    // Keep the map to whole records, so appends stay aligned.
    if (ftruncate(map_fd_.get(), static_cast<off_t>(kPartHeader + records * 16)) != 0) return false;
    return true;
  }

  // Hashes ranges ahead of the prefix once the prefix reaches them, reading
  // them back from the file (the page cache, normally).
  Status CatchUp() {
    while (!ahead_.empty() && ahead_.begin()->first <= hashed_) {
      uint64_t end = ahead_.begin()->second;
      ahead_.erase(ahead_.begin());
      if (end <= hashed_) continue;
      buf_.resize(1 << 20);
      while (hashed_ < end) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size(), end - hashed_));
        auto r = PreadFull(part_fd_.get(), buf_.data(), want, hashed_);
        if (!r.ok()) return r.status();
        if (*r != want) return Error(Code::kIo, part_ + ": short read");
        hasher_.Update(buf_.data(), want);
        hashed_ += want;
      }
    }
    return Status::Ok();
  }

  std::string final_, part_, map_;
  UniqueFd part_fd_, map_fd_;
  uint64_t size_ = 0, hashed_ = 0, unsynced_ = 0;
  Hasher hasher_;
  bool rewritten_ = false;
  std::map<uint64_t, uint64_t> ahead_;  // offset -> end of ranges written past hashed_
  std::vector<std::pair<uint64_t, uint64_t>> resumed_;
  std::vector<uint8_t> buf_;
};

}  // namespace

bool FileStore::Has(const std::string& name, const Hash256& hash) {
  std::string path = PathOf(name);
  struct stat st;
  // lstat: a symlink at the name is not an object we hold (whatever it points at).
  if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    known_.erase(name);
    return false;
  }
  Known k;
  k.dev = st.st_dev;
  k.ino = st.st_ino;
  k.size = static_cast<uint64_t>(st.st_size);
  k.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  k.ctime_ns = int64_t(st.st_ctim.tv_sec) * 1'000'000'000 + st.st_ctim.tv_nsec;
  auto it = known_.find(name);
  if (it != known_.end() && it->second.dev == k.dev && it->second.ino == k.ino && it->second.size == k.size &&
      it->second.mtime_ns == k.mtime_ns && it->second.ctime_ns == k.ctime_ns)
    return it->second.hash == hash;
  auto h = HashPath(path);
  if (!h.ok()) return false;
  k.hash = *h;
  known_[name] = k;
  return *h == hash;
}

Result<std::unique_ptr<ObjectSink>> FileStore::Create(const std::string& name, uint32_t object_id, uint64_t size) {
  auto sink = std::make_unique<FileSink>();
  CM_RETURN_IF_ERROR(sink->Open(PathOf(name), object_id, size));
  return std::unique_ptr<ObjectSink>(std::move(sink));
}

void FileStore::LoadSessions() {
  if (sessions_loaded_) return;
  sessions_loaded_ = true;
  UniqueFd fd(open((dir_ + "/" + kSessionsFile).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return;  // none yet (or a symlink: not ours, replaced at the next record)
  std::string body;
  char buf[65536];
  ssize_t r;
  while (body.size() < (4u << 20) && (r = read(fd.get(), buf, sizeof buf)) > 0) body.append(buf, static_cast<size_t>(r));
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    uint64_t started = 0;
    std::string sender_hex, name_hex;
    if (!(words >> started >> sender_hex >> name_hex) || sender_hex.size() % 2 || name_hex.size() % 2) continue;
    std::string sender(sender_hex.size() / 2, '\0'), name(name_hex.size() / 2, '\0');
    if (!FromHex(sender_hex, reinterpret_cast<uint8_t*>(sender.data()), sender.size()) ||
        !FromHex(name_hex, reinterpret_cast<uint8_t*>(name.data()), name.size()))
      continue;
    uint64_t& v = sessions_[{name, sender}];
    v = std::max(v, started);
  }
}

uint64_t FileStore::LastSession(const std::string& name, const std::string& sender) {
  LoadSessions();
  auto it = sessions_.find({name, sender});
  return it == sessions_.end() ? 0 : it->second;
}

Status FileStore::RecordSession(const std::string& name, const std::string& sender, uint64_t started_ms) {
  LoadSessions();
  uint64_t& v = sessions_[{name, sender}];
  v = std::max(v, started_ms);
  while (sessions_.size() > kMaxSessions) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    sessions_.erase(oldest);
  }
  std::string body;
  for (const auto& [key, started] : sessions_)
    body += std::to_string(started) + " " +
            ToHex(reinterpret_cast<const uint8_t*>(key.second.data()), key.second.size()) + " " +
            ToHex(reinterpret_cast<const uint8_t*>(key.first.data()), key.first.size()) + "\n";
  std::random_device rd;
  std::string tmp = dir_ + "/" + kSessionsFile + ".tmp." + std::to_string((uint64_t(rd()) << 32) | rd());
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return ErrnoError(tmp, errno);
  Status st = WriteFull(fd.get(), body.data(), body.size());
  if (st.ok() && fsync(fd.get()) != 0) st = ErrnoError(tmp, errno);
  if (st.ok() && rename(tmp.c_str(), (dir_ + "/" + kSessionsFile).c_str()) != 0) st = ErrnoError(tmp, errno);
  if (!st.ok()) unlink(tmp.c_str());
  return st;
}

}  // namespace cm::mcast
