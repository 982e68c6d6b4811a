#include "pack/pack_settings.h"

#include <charconv>

#include "util/file_util.h"
#include "util/strings.h"
#include "util/toml_flags.h"

namespace cm::pack {

Status LoadPackConfig(const std::string& path, bool explicit_path,
                      const std::function<const CLI::Option*(const char*)>& flag, PackSettings* o) {
  auto text = ReadFileToString(path);
  if (!text.ok()) {
    if (!explicit_path && text.status().code() == Code::kNotFound) return Status::Ok();
    // A configuration named but not readable is a usage error, as for every
    // tool's --config and key files (exit 2).
    return Error(Code::kUsage, text.status().message());
  }
  auto level = [](const int* l) { return [l] { return *l >= 1 && *l <= 22; }; };
  TomlFlags toml;
  toml.Bind("sign_key", &o->sign_key, flag("--sign-key"))
      .Bind("group_key", &o->group_key, flag("--group-key"))
      .Bind("serial_file", &o->serial_file, flag("--serial-file"))
      .Bind("max_size", &o->max_size, flag("--max-size"))
      .Bind("chunk_size", &o->chunk_size, flag("--chunk-size"))
      .Bind("level", &o->level, flag("--level"))
      .Require(level(&o->level), "a zstd level from 1 to 22")
      .Bind("delta_level", &o->delta_level, flag("--delta-level"))
      .Require(level(&o->delta_level), "a zstd level from 1 to 22");
  return toml.ApplyText(*text, path);
}

namespace {
Status ParseManifestFlag(const char* flag, const std::string& v, std::optional<Hash256>* out) {
  if (v.empty()) return Status::Ok();
  Hash256 h{};
  if (v != "none" && (v.size() != 64 || !FromHex(v, h.data(), h.size())))
    return Error(Code::kUsage, std::string(flag) + ": expected 64 hex digits or 'none': " + v);
  *out = h;
  return Status::Ok();
}
}  // namespace

Result<PackOptions> MakePackOptions(const PackSettings& o, Type type) {
  PackOptions p;
  CM_RETURN_IF_ERROR(ParseManifestFlag("--base-manifest", o.base_manifest, &p.base_manifest));
  CM_RETURN_IF_ERROR(ParseManifestFlag("--result-manifest", o.result_manifest, &p.result_manifest));
  if (!o.base_release.empty()) {
    delta::TableBase b;
    b.release = o.base_release;
    std::string enc;
    delta::EncodeTableBase(b, &enc);
    if (!delta::DecodeTableBase(enc, &b))
      return Error(Code::kUsage, "--base-release: at most 255 printable characters: " + o.base_release);
    p.base_release = o.base_release == "none" ? "" : o.base_release;
  }
  if (!o.base_serial.empty()) {
    uint64_t v = 0;
    const char* b = o.base_serial.data();
    const char* e = b + o.base_serial.size();
    auto r = std::from_chars(b, e, v);
    if (r.ec != std::errc() || r.ptr != e || b == e) return Error(Code::kUsage, "--base-serial: not a number: " + o.base_serial);
    p.base_serial = v;
  }
  p.no_base = o.no_base;
  p.type = type;
  if (o.serial) p.serial = o.serial;
  p.serial_file = o.serial_file;
  p.job_id = o.job;
  auto ms = ParseSize(o.max_size);
  if (!ms || *ms == 0) return Error(Code::kUsage, "--max-size: not a size: " + o.max_size);
  p.max_size = *ms;
  auto cs = ParseSize(o.chunk_size);
  if (!cs || CheckChunkSizeOption(*cs).code() != Code::kOk)
    return Error(Code::kUsage, "--chunk-size: not 0 or a power of two from 64K to 64M: " + o.chunk_size);
  p.chunk_size = static_cast<uint32_t>(*cs);
  p.version = static_cast<uint16_t>(o.format);
  p.level = o.level;
  p.delta_level = o.delta_level;
  p.owners = !o.no_owner;
  if (!o.sign_key.empty()) {
    CM_ASSIGN_OR_RETURN(SigningKey k, LoadSigningKey(o.sign_key));
    p.sign = k;
  }
  if (!o.group_key.empty()) {
    CM_ASSIGN_OR_RETURN(GroupKey k, LoadGroupKey(o.group_key));
    p.encrypt = k;
  }
  return p;
}

Result<ReaderOptions> MakeReaderOptions(const std::string& pub_key, const std::string& group_key) {
  ReaderOptions ro;
  ro.allow_sealed = true;  // integrity and signature need no group key
  if (!pub_key.empty()) {
    CM_ASSIGN_OR_RETURN(PublicKey k, LoadPublicKey(pub_key));
    ro.pub_key = k;
  }
  if (!group_key.empty()) {
    CM_ASSIGN_OR_RETURN(GroupKey k, LoadGroupKey(group_key));
    ro.group_key = k;
  }
  return ro;
}

}  // namespace cm::pack
