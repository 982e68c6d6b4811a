#include "pack/inspect.h"

#include <cstdio>
#include <ctime>

#include "pack/tool_output.h"
#include "util/json.h"
#include "util/strings.h"

namespace cm::pack {
namespace {
std::string HeaderJson(const Header& h) {
  JsonObject o;
  o.Uint("version", h.version())
      .Str("type", TypeName(h.type))
      .Uint("serial", h.serial)
      .Str("job", h.job_id)
      .Uint("part", h.part)
      .Bool("last_part", h.flags & kFlagLastPart)
      .Bool("signed", h.flags & kFlagSigned)
      .Bool("encrypted", h.flags & kFlagEncrypted)
      .Uint("created", h.created_unix)
      .Uint("data_size", h.data_size)
      .Uint("body_size", h.body_size)
      .Uint("space_needed", h.space_needed)
      .Uint("commands", h.command_count)
      .Str("data_hash", ToHex(h.data_hash));
  if (h.flags & kFlagSigned) o.Str("key_id", ToHex(h.key_id.data(), 8));
  // 0 and 0 in version 1 (no chunk table).
  o.Uint("chunk_size", h.chunk_size).Uint("chunk_count", h.chunk_count);
  if (h.has_chunk_table()) o.Str("table_hash", ToHex(h.table_hash));
  if (h.type == Type::kRollback) o.Str("rollback_to", RollbackTarget(h));  // "" = the previous release
  return o.Build();
}

std::string HashOrNone(const Hash256& h) { return delta::IsZeroHash(h) ? std::string() : ToHex(h); }

std::string BaseJson(const delta::TableBase& b) {
  JsonObject o;
  o.Str("release", b.release).Uint("serial", b.serial).Str("manifest", HashOrNone(b.manifest));
  o.Str("result_manifest", HashOrNone(b.result_manifest));
  return o.Build();
}

std::string BaseText(const delta::TableBase& b) {
  auto h = [](const Hash256& x) { return delta::IsZeroHash(x) ? std::string("none") : ToHex(x); };
  return "  base      " + (b.release.empty() ? std::string("(release not named)") : b.release) + " serial " +
         std::to_string(b.serial) + "\n            manifest " + h(b.manifest) + "\n            result   " +
         h(b.result_manifest) + "\n";
}

std::string ChunkLine(const Header& h) {
  if (!h.has_chunk_table()) return "1 (no chunk table)";
  return std::to_string(h.version()) + (h.compact_body ? " (compact commands)" : "") + ", chunk table: " + std::to_string(h.chunk_count) + (h.chunk_count == 1 ? " chunk" : " chunks") +
         " of " + HumanBytes(h.chunk_size);
}

std::string CommandJson(const Command& c) {
  JsonObject o;
  o.Str("op", OpcodeName(c.op)).Str("path", c.path);
  if (c.op == Opcode::kRename || c.op == Opcode::kCopy) o.Str("to", c.path2);
  if (c.op == Opcode::kSymlink) o.Str("target", c.path2);
  if (c.op == Opcode::kTouch) {
    o.Str("last", c.path2).Int("mtime_ns", c.meta.mtime_ns).Uint("count", c.size);
    return o.Build();
  }
  if (c.op != Opcode::kRemove && c.op != Opcode::kRename && c.op != Opcode::kCopy) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", c.meta.mode);
    o.Str("mode", mode);
  }
  if (c.op == Opcode::kCreate || c.op == Opcode::kPatch) {
    o.Uint("size", c.size).Uint("data_bytes", c.data.length);
    if (c.has_hash) o.Str("hash", ToHex(c.hash));
  }
  if (c.op == Opcode::kPatch) o.Uint("base_size", c.base_size).Str("base_hash", ToHex(c.base_hash));
  return o.Build();
}

std::string CommandLine(const Command& c) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", c.meta.mode);
  std::string s = std::string(OpcodeName(c.op));
  s.resize(9, ' ');
  switch (c.op) {
    case Opcode::kCreate: return s + mode + " " + c.path + "  (" + HumanBytes(c.size) + ")";
    case Opcode::kPatch:
      return s + mode + " " + c.path + "  (" + HumanBytes(c.size) + ", delta " + HumanBytes(c.data.length) + ")";
    case Opcode::kMkdir:
    case Opcode::kSetMeta: return s + mode + " " + c.path;
    case Opcode::kSymlink: return s + "     " + c.path + " -> " + c.path2;
    case Opcode::kRename:
    case Opcode::kCopy: return s + "     " + c.path + " => " + c.path2;
    case Opcode::kRemove: return s + "     " + c.path;
    case Opcode::kBase: return s;  // never returned by NextCommand
    case Opcode::kTouch:
      return s + "     " + c.path + " .. " + c.path2 + "  (" + std::to_string(c.size) + " entries)";
  }
  return s;
}
}  // namespace

Status DescribeAssignment(const std::string& path, const ReaderOptions& opts, bool json, std::string* out) {
  CM_ASSIGN_OR_RETURN(auto reader, AssignmentReader::Open(path, opts));
  const Header& h = reader->header();
  Status verified = reader->Verify();
  JsonArray cmds;
  std::string lines;
  const bool sealed = verified.ok() && reader->sealed();
  if (verified.ok() && !sealed) {
    Command c;
    for (;;) {
      auto more = reader->NextCommand(&c);
      if (!more.ok()) {
        verified = more.status();
        break;
      }
      if (!*more) break;
      if (json)
        cmds.Raw(CommandJson(c));
      else
        lines += "  " + CommandLine(c) + "\n";
    }
  }
  if (json) {
    JsonObject o;
    o.Str("file", path).Raw("header", HeaderJson(h)).Bool("verified", verified.ok());
    // null: no BASE command (or the commands are unreadable).
    o.Raw("base", reader->base() ? BaseJson(*reader->base()) : "null");
    if (sealed) o.Bool("commands_sealed", true);
    if (!verified.ok()) o.Str("error", verified.message());
    o.Raw("commands", cmds.Build());
    *out = o.Build() + "\n";
  } else {
    char when[64] = "?";
    time_t t = static_cast<time_t>(h.created_unix);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string s;
    s += "assignment " + path + "\n";
    s += "  version   " + ChunkLine(h) + "\n";
    s += "  type      " + std::string(TypeName(h.type)) + "\n";
    s += "  job       " + h.job_id + "  part " + std::to_string(h.part) +
         ((h.flags & kFlagLastPart) ? " (last)" : " (more follow)") + "\n";
    s += "  serial    " + std::to_string(h.serial) + "\n";
    if (h.type == Type::kRollback) {
      const std::string to = RollbackTarget(h);
      s += "  to        " + (to.empty() ? std::string("the previous release") : "release " + to) + "\n";
    }
    s += "  created   " + std::string(when) + "\n";
    s += "  signed    " + std::string((h.flags & kFlagSigned) ? "yes, key " + ToHex(h.key_id.data(), 8) : "no") + "\n";
    s += "  encrypted " + std::string((h.flags & kFlagEncrypted) ? "yes" : "no") + "\n";
    s += "  data      " + HumanBytes(h.data_size) + " stored, " + HumanBytes(h.space_needed) + " of files\n";
    s += "  commands  " + std::to_string(h.command_count) + (reader->base() ? " (1 base)" : "") + "\n";
    if (reader->base()) s += BaseText(*reader->base());
    s += "  verified  " + std::string(verified.ok() ? "hashes ok" : "NO: " + verified.message()) +
         (verified.ok() && opts.pub_key ? ", signature ok" : "") +
         (sealed ? "; commands encrypted (no group key given)" : "") + "\n";
    *out = s + lines;
  }
  return verified;
}

}  // namespace cm::pack
