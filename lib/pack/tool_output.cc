#include "pack/tool_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "util/file_util.h"
#include "util/json.h"
#include "util/strings.h"

namespace cm::pack {

Status StdoutSpool::Prepare(std::string* output) {
  if (!output->empty() && *output != "-") return Status::Ok();
  if (IsTerminal(1)) return Error(Code::kUsage, "refusing to write an assignment to a terminal; use -o FILE");
  const char* t = getenv("TMPDIR");
  dir_ = std::string(t && *t ? t : "/tmp") + "/cm-pack-XXXXXX";
  if (!mkdtemp(dir_.data())) return ErrnoError("temporary directory", errno);
  *output = dir_ + "/out.cma";
  path_ = *output;
  return Status::Ok();
}

Status StdoutSpool::Flush(const PackResult& r) {
  if (path_.empty()) return Status::Ok();
  if (r.files.size() != 1) return Error(Code::kUsage, "the job was split into parts; use -o FILE");
  UniqueFd fd(open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoError(path_, errno);
  char buf[1 << 16];
  for (;;) {
    auto n = ReadFull(fd.get(), buf, sizeof buf);
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    CM_RETURN_IF_ERROR(WriteFull(1, buf, *n));
  }
  return Status::Ok();
}

StdoutSpool::~StdoutSpool() {
  if (!path_.empty()) unlink(path_.c_str());
  if (!dir_.empty() && dir_.find("XXXXXX") == std::string::npos) rmdir(dir_.c_str());
}

std::string PackResultJson(const PackResult& r) {
  JsonArray files;
  for (const auto& f : r.files) {
    files.Raw(JsonObject()
                  .Str("path", f.path)
                  .Uint("version", f.header.version())
                  .Str("type", TypeName(f.header.type))
                  .Uint("serial", f.header.serial)
                  .Str("job", f.header.job_id)
                  .Uint("part", f.header.part)
                  .Bool("last_part", f.header.flags & kFlagLastPart)
                  .Uint("data_size", f.header.data_size)
                  .Uint("body_size", f.header.body_size)
                  .Uint("file_size", LayoutOf(f.header).file_size)
                  .Uint("commands", f.header.command_count)
                  .Bool("signed", f.header.flags & kFlagSigned)
                  .Bool("encrypted", f.header.flags & kFlagEncrypted)
                  .Uint("chunk_size", f.header.chunk_size)
                  .Uint("chunk_count", f.header.chunk_count)
                  .Uint("rollback_serial", f.header.rollback_serial)
                  .Build());
  }
  return JsonObject()
      .Raw("files", files.Build())
      .Uint("entries", r.entries)
      .Uint("raw_bytes", r.raw_bytes)
      .Bool("no_changes", r.no_changes)
      .Build();
}

std::string RollbackTarget(const Header& h) {
  if (h.rollback_serial == 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "s%012" PRIu64 "-", h.rollback_serial);
  return buf + h.job_id;
}

std::vector<std::string> PackResultLines(const PackResult& r) {
  std::vector<std::string> out;
  for (const auto& f : r.files) {
    out.push_back(f.path + ": " + TypeName(f.header.type) + " job " + f.header.job_id + " serial " +
                  std::to_string(f.header.serial) + " part " + std::to_string(f.header.part) + ", " +
                  std::to_string(f.header.command_count) + " commands, " + HumanBytes(f.header.data_size) +
                  " data, " + HumanBytes(LayoutOf(f.header).file_size) + " in all" +
                  (f.header.rollback_serial ? ", to release " + RollbackTarget(f.header) : std::string()));
  }
  return out;
}

}  // namespace cm::pack
