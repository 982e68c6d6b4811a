#include "pack/pack_settings.h"

#include <unistd.h>

#include <toml++/toml.h>

#include "util/strings.h"

namespace cm::pack {

Status LoadPackConfig(const std::string& path, bool explicit_path,
                      const std::function<bool(const char*)>& given, PackSettings* o) {
  if (access(path.c_str(), R_OK) != 0) {
    if (explicit_path) return ErrnoError(path, errno);
    return Status::Ok();
  }
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Error(Code::kUsage, path + ": " + std::string(e.description()));
  }
  auto unset = [&](const char* opt) { return !given(opt); };
  if (auto v = t["sign_key"].value<std::string>(); v && unset("--sign-key")) o->sign_key = *v;
  if (auto v = t["group_key"].value<std::string>(); v && unset("--group-key")) o->group_key = *v;
  if (auto v = t["serial_file"].value<std::string>(); v && unset("--serial-file")) o->serial_file = *v;
  if (auto v = t["max_size"].value<std::string>(); v && unset("--max-size")) o->max_size = *v;
  if (auto v = t["chunk_size"].value<std::string>(); v && unset("--chunk-size")) o->chunk_size = *v;
  if (auto v = t["chunk_size"].value<int64_t>(); v && unset("--chunk-size")) o->chunk_size = std::to_string(*v);
  if (auto v = t["level"].value<int64_t>(); v && unset("--level")) o->level = static_cast<int>(*v);
  if (auto v = t["delta_level"].value<int64_t>(); v && unset("--delta-level")) o->delta_level = static_cast<int>(*v);
  return Status::Ok();
}

Result<PackOptions> MakePackOptions(const PackSettings& o, Type type) {
  PackOptions p;
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
