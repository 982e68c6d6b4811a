#include "apply/journal.h"

#include <unistd.h>

#include <cerrno>

#include "apply/kv_text.h"
#include "util/file_util.h"

namespace cm::apply {
namespace {
constexpr char kMagic[] = "cm-apply-journal";
constexpr int kVersion = 1;
}  // namespace

std::string EncodeJournal(const Journal& j) {
  KvLines l{{"op", j.op}, {"from", j.from}, {"to", j.to}, {"stage", j.stage}};
  if (j.applied)
    l.emplace_back("applied", std::to_string(j.applied->serial) + " " + j.applied->id_hex + " " + j.applied->job);
  return EncodeKv(kMagic, kVersion, l);
}

Result<Journal> DecodeJournal(std::string_view text) {
  CM_ASSIGN_OR_RETURN(KvLines lines, DecodeKv(kMagic, kVersion, text));
  Journal j;
  for (const auto& [k, v] : lines) {
    if (k == "op") {
      j.op = v;
    } else if (k == "from") {
      j.from = v;
    } else if (k == "to") {
      j.to = v;
    } else if (k == "stage") {
      j.stage = v;
    } else if (k == "applied") {
      size_t a = v.find(' '), b = a == std::string::npos ? a : v.find(' ', a + 1);
      AppliedId id;
      if (b == std::string::npos || !ParseU64(std::string_view(v).substr(0, a), &id.serial))
        return Error(Code::kCorrupt, "journal: bad applied line");
      id.id_hex = v.substr(a + 1, b - a - 1);
      id.job = v.substr(b + 1);
      j.applied = id;
    }
  }
  if ((j.op != "commit" && j.op != "rollback") || j.to.empty() || j.to.find('/') != std::string::npos ||
      j.from.find('/') != std::string::npos || j.stage.find('/') != std::string::npos)
    return Error(Code::kCorrupt, "journal: malformed");
  return j;
}

Status WriteJournal(const Layout& l, const Journal& j) { return WriteFileAtomic(l.journal, EncodeJournal(j), 0600); }

Result<std::optional<Journal>> ReadJournal(const Layout& l) {
  auto text = ReadFileToString(l.journal);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) return std::optional<Journal>();
    return text.status();
  }
  auto j = DecodeJournal(*text);
  if (!j.ok()) return Status(j.status().code(), l.journal + ": " + j.status().message());
  return std::optional<Journal>(std::move(j).value());
}

Status RemoveJournal(const Layout& l) {
  if (::unlink(l.journal.c_str()) != 0 && errno != ENOENT) return ErrnoError(l.journal, errno);
  return FsyncDir(l.meta);
}

}  // namespace cm::apply
