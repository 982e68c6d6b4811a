// A sequential byte stream. Implementations: a file descriptor (FdSource),
// a byte range of a file (FileRangeSource), a string (StringSource); the
// pack module adds decrypting and decompressing sources on top.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/status.h"

namespace cm {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes; returns 0 only at end of stream.
  virtual Result<size_t> Read(void* buf, size_t n) = 0;
  // Reads exactly n bytes or fails with kCorrupt ("truncated <what>").
  Status ReadExact(void* buf, size_t n, const char* what);
};

class FdSource : public ByteSource {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  Result<size_t> Read(void* buf, size_t n) override;

 private:
  int fd_;
};

// [offset, offset+length) of a file, read with pread; does not move the fd offset.
class FileRangeSource : public ByteSource {
 public:
  FileRangeSource(int fd, uint64_t offset, uint64_t length) : fd_(fd), pos_(offset), end_(offset + length) {}
  Result<size_t> Read(void* buf, size_t n) override;

 private:
  int fd_;
  uint64_t pos_, end_;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  Result<size_t> Read(void* buf, size_t n) override;

 private:
  std::string data_;
  size_t pos_ = 0;
};

// A sink for bytes (output files, hashers, buffers).
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Write(const void* buf, size_t n) = 0;
};

class StringSink : public ByteSink {
 public:
  Status Write(const void* buf, size_t n) override {
    data_.append(static_cast<const char*>(buf), n);
    return Status::Ok();
  }
  std::string& data() { return data_; }

 private:
  std::string data_;
};

class FdSink : public ByteSink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  Status Write(const void* buf, size_t n) override;

 private:
  int fd_;
};

}  // namespace cm
