#include "pushrun/relay_config.h"

#include <algorithm>
#include <map>
#include <toml++/toml.h>

namespace cm::pushrun {

Status LoadRelayToml(const std::string& path, const std::function<bool(const std::string&)>& given,
                     RelayOptions* r) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return Error(Code::kUsage, path + ":" + std::to_string(e.source().begin.line) + ": " +
                                   std::string(e.description()));
  }
  const std::map<std::string, std::string*> strings{
      {"name", &r->name},          {"listen", &r->listen},     {"url", &r->url},
      {"spool", &r->spool},        {"root", &r->root},         {"iface", &r->iface},
      {"cm_apply", &r->cm_apply},  {"cm_mcast", &r->cm_mcast}, {"pub_key", &r->pub_key},
      {"group_key", &r->group_key}, {"mcast_rate", &r->mcast_rate}};
  const std::map<std::string, double*> seconds{{"member_wait", &r->member_wait_s},
                                               {"member_retry", &r->member_retry_s}};
  const std::map<std::string, bool*> flags{{"allow_unsigned", &r->allow_unsigned}};
  for (const auto& [key, node] : t) {
    const std::string k(key.str());
    std::string flag = "--" + k;
    std::replace(flag.begin(), flag.end(), '_', '-');
    auto bad = [&](const char* want) {
      return Error(Code::kUsage, path + ":" + std::to_string(node.source().begin.line) + ": " + k + ": " + want);
    };
    if (auto s = strings.find(k); s != strings.end()) {
      auto v = node.value<std::string>();
      if (!v) return bad("expected a string");
      if (!given(flag)) *s->second = *v;
    } else if (auto d = seconds.find(k); d != seconds.end()) {
      auto v = node.value<double>();
      if (!v || *v < 0) return bad("expected a number of seconds");
      if (!given(flag)) *d->second = *v;
    } else if (auto b = flags.find(k); b != flags.end()) {
      auto v = node.value<bool>();
      if (!v) return bad("expected true or false");
      if (!given(flag)) *b->second = *v;
    } else {
      return bad("unknown key");
    }
  }
  return Status::Ok();
}

}  // namespace cm::pushrun
