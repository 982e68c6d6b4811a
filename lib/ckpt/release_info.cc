#include "ckpt/release_info.h"

#include <charconv>

namespace cm::ckpt {

namespace {

constexpr std::string_view kMagic = "cm-checkpoint 1";

template <typename T>
bool ParseNum(std::string_view s, T* v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::string EncodeInfo(const ReleaseInfo& i) {
  std::string out(kMagic);
  out += "\nrelease " + i.release;
  out += "\nserial " + std::to_string(i.serial);
  out += "\nmanifest " + ToHex(i.manifest);
  out += "\nfiles " + std::to_string(i.files);
  out += "\nbytes " + std::to_string(i.bytes);
  out += "\ncreated_unix " + std::to_string(i.created_unix);
  out += "\nsource_dev " + std::to_string(i.source_dev);
  // A path with a newline cannot be a line: recorded as unknown.
  if (!i.source.empty() && i.source.find('\n') == std::string::npos) out += "\nsource " + i.source;
  out += "\n";
  return out;
}

Result<ReleaseInfo> DecodeInfo(std::string_view text) {
  auto bad = [](const std::string& what) { return Error(Code::kCorrupt, "checkpoint record: " + what); };
  size_t pos = text.find('\n');
  if (pos == std::string_view::npos || text.substr(0, pos) != kMagic) return bad("no \"cm-checkpoint 1\" line");
  ReleaseInfo i;
  bool have_release = false, have_manifest = false;
  for (pos += 1; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) return bad("no newline at the end");
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t sp = line.find(' ');
    std::string_view key = line.substr(0, sp), value = sp == std::string_view::npos ? "" : line.substr(sp + 1);
    bool ok = true;
    if (key == "release") {
      i.release = std::string(value);
      ok = IsValidReleaseName(value);
      have_release = true;
    } else if (key == "serial") {
      ok = ParseNum(value, &i.serial);
    } else if (key == "manifest") {
      ok = value.size() == 64 && FromHex(value, i.manifest.data(), 32);
      have_manifest = true;
    } else if (key == "files") {
      ok = ParseNum(value, &i.files);
    } else if (key == "bytes") {
      ok = ParseNum(value, &i.bytes);
    } else if (key == "created_unix") {
      ok = ParseNum(value, &i.created_unix);
    } else if (key == "source_dev") {
      ok = ParseNum(value, &i.source_dev);
    } else if (key == "source") {
      i.source = std::string(value);
    }
    if (!ok) return bad("bad " + std::string(key));
  }
  if (!have_release || !have_manifest) return bad("no release or manifest line");
  return i;
}

bool IsValidReleaseName(std::string_view name) {
  if (name.empty() || name.size() > 200 || name[0] == '.') return false;
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool NewerThan(const ReleaseInfo& a, const ReleaseInfo& b) {
  if (a.serial != b.serial) return a.serial > b.serial;
  if (a.created_unix != b.created_unix) return a.created_unix > b.created_unix;
  return a.release > b.release;
}

}  // namespace cm::ckpt
