#include "mcast/file_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cm::mcast {

Result<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  auto s = std::unique_ptr<FileSource>(new FileSource);
  s->fd_ = UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!s->fd_) return ErrnoError(path, errno);
  struct stat st;
  if (fstat(s->fd_.get(), &st) != 0) return ErrnoError(path, errno);
  if (!S_ISREG(st.st_mode)) return Error(Code::kUsage, path + ": not a regular file");
  s->size_ = static_cast<uint64_t>(st.st_size);
  return s;
}

Status FileSource::Read(uint64_t offset, size_t n, uint8_t* out) {
  auto r = PreadFull(fd_.get(), out, n, offset);
  if (!r.ok()) return r.status();
  if (*r != n) return Error(Code::kIo, "short read: the file changed while being sent");
  return Status::Ok();
}

namespace {

class FileSink : public ObjectSink {
 public:
  Status Open(const std::string& path, uint64_t size) {
    CM_RETURN_IF_ERROR(file_.Open(path));
    if (ftruncate(file_.fd(), static_cast<off_t>(size)) != 0) return ErrnoError(path, errno);
    return Status::Ok();
  }
  Status Write(uint64_t offset, const uint8_t* data, size_t n) override {
    return PwriteFull(file_.fd(), data, n, offset);
  }
  Status Commit(const Hash256& expected) override {
    // The temporary file is open write-only: hash it through a fresh descriptor.
    UniqueFd rd(open(file_.temp_path().c_str(), O_RDONLY | O_CLOEXEC));
    if (!rd) return ErrnoError(file_.temp_path(), errno);
    auto h = HashFile(rd.get());
    if (!h.ok()) return h.status();
    if (*h != expected) return Error(Code::kCorrupt, "hash mismatch");
    return file_.Commit();
  }

 private:
  AtomicFile file_;
};

}  // namespace

bool FileStore::Has(const std::string& name, const Hash256& hash) {
  auto h = HashPath(PathOf(name));
  return h.ok() && *h == hash;
}

Result<std::unique_ptr<ObjectSink>> FileStore::Create(const std::string& name, const Hash256&, uint64_t size) {
  auto sink = std::make_unique<FileSink>();
  CM_RETURN_IF_ERROR(sink->Open(PathOf(name), size));
  return std::unique_ptr<ObjectSink>(std::move(sink));
}

}  // namespace cm::mcast
