#include "apply/config.h"

#include <toml++/toml.h>

#include <cstdlib>

#include "util/file_util.h"

namespace cm::apply {

Status ParseConfig(std::string_view text, const std::string& name, ApplyConfig* cfg) {
  toml::table t;
  try {
    t = toml::parse(text, name);
  } catch (const toml::parse_error& err) {
    // toml++ reports syntax errors only by exception; this is the one place they are caught.
    return Error(Code::kUsage, name + ":" + std::to_string(err.source().begin.line) + ": " +
                                   std::string(err.description()));
  }
  for (const auto& [key, node] : t) {
    const std::string k(key.str());
    auto bad = [&](const char* want) { return Error(Code::kUsage, name + ": " + k + " must be " + want); };
    if (k == "root" || k == "pub_key" || k == "group_key") {
      auto v = node.value<std::string>();
      if (!v || v->empty()) return bad("a non-empty string");
      (k == "root" ? cfg->root : k == "pub_key" ? cfg->pub_key : cfg->group_key) = *v;
    } else if (k == "keep") {
      auto v = node.value<int64_t>();
      if (!v || *v < 2 || *v > 1000) return bad("an integer from 2 to 1000");
      cfg->keep = *v;
    } else if (k == "space_margin") {
      auto v = node.value<int64_t>();
      if (!v || *v < 0) return bad("a non-negative integer (bytes)");
      cfg->space_margin = static_cast<uint64_t>(*v);
    } else {
      return Error(Code::kUsage, name + ": unknown key '" + k + "'");
    }
  }
  return Status::Ok();
}

Status LoadConfig(const std::string& path, ApplyConfig* cfg) {
  CM_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseConfig(text, path, cfg);
}

}  // namespace cm::apply
