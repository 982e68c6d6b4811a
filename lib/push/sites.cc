#include "push/sites.h"

#include <set>

#include <toml++/toml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <initializer_list>
#include <map>

#include "util/file_util.h"

namespace cm::push {

namespace {

constexpr std::array<std::string_view, 5> kFactKeys = {"cpu_permille", "rate_mbit", "tz", "location",
                                                     "reliability_permille"};

bool IsValidName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// "+01:00" / "-05:30" -> minutes east of UTC.
std::optional<int32_t> ParseUtcOffset(std::string_view s) {
  if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return std::nullopt;
  auto two = [&](size_t at) -> int {
    char a = s[at], b = s[at + 1];
    if (a < '0' || a > '9' || b < '0' || b > '9') return -1;
    return (a - '0') * 10 + (b - '0');
  };
  int h = two(1), m = two(4);
  if (h < 0 || m < 0 || m > 59) return std::nullopt;
  int32_t total = (h * 60 + m) * (s[0] == '-' ? -1 : 1);
  if (total < -12 * 60 || total > 14 * 60) return std::nullopt;
  return total;
}

// "http://host[:port][/]" -> the same without the trailing '/'; nullopt when
// malformed (other schemes, a path, an empty host, a port outside 1..65535).
std::optional<std::string> NormalizeHttpUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  std::string_view rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto colon = rest.find(':');
  std::string_view host = rest.substr(0, colon);
  if (host.empty() || !std::all_of(host.begin(), host.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
      }))
    return std::nullopt;
  if (colon != std::string_view::npos) {
    std::string_view port = rest.substr(colon + 1);
    unsigned p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535)
      return std::nullopt;
  }
  return std::string(kScheme) + std::string(rest);
}

// One parse of one file: the file name for messages, and the names seen so far.
class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) {}

  Result<SitesConfig> Run(const toml::table& root);

 private:
  struct Seen {
    std::string site;
    int line;
  };

  // "<file>:<line>: <field>: <problem>", kUsage.
  Status Fail(const toml::node& at, const std::string& field, const std::string& problem) const {
    return Error(Code::kUsage,
                 file_ + ":" + std::to_string(at.source().begin.line) + ": " + field + ": " + problem);
  }
  // An error for the first key of `t` that is neither in `allowed` nor, when
  // `facts` is set, one of kFactKeys.
  Status CheckKeys(const toml::table& t, std::initializer_list<std::string_view> allowed, bool facts,
                   const std::string& path) const;
  // A string field: nullopt when absent; an error when of another type.
  Result<std::optional<std::string>> Str(const toml::table& t, std::string_view key, const std::string& path) const;
  // A required string field.
  Result<std::string> NeedStr(const toml::table& t, std::string_view key, const std::string& path) const;
  Result<std::optional<int64_t>> Int(const toml::table& t, std::string_view key, const std::string& path,
                                     int64_t lo, int64_t hi) const;
  Result<proto::Address> Endpoint(const toml::table& t, std::string_view key, const std::string& path) const;

  Status ParseCcm(const toml::table& t, CcmConfig* ccm);
  Status ParseOrder(const toml::table& ccm_table, SitesConfig* cfg);
  Status ParseFacts(const toml::table& t, const std::string& path, ServerFacts* f) const;
  Status ParseSite(const toml::table& t, size_t index, uint16_t relay_port, Site* site);
  Status ParseServer(const toml::table& t, const std::string& site_path, size_t index, uint16_t relay_port,
                     Server* s);

  std::string file_;
  std::map<std::string, int, std::less<>> site_lines_;   // site name -> line
  std::map<std::string, Seen, std::less<>> server_seen_;  // server name -> site, line
  std::map<uint32_t, std::pair<std::string, int>> ips_;   // ip -> server, line
};

Status Parser::CheckKeys(const toml::table& t, std::initializer_list<std::string_view> allowed, bool facts,
                         const std::string& path) const {
  for (const auto& [key, node] : t) {
    std::string_view k = key.str();
    bool known = std::find(allowed.begin(), allowed.end(), k) != allowed.end() ||
                 (facts && std::find(kFactKeys.begin(), kFactKeys.end(), k) != kFactKeys.end());
    if (!known)
      return Fail(node, path.empty() ? std::string(k) : path + "." + std::string(k), "unknown key");
  }
  return Status::Ok();
}

Result<std::optional<std::string>> Parser::Str(const toml::table& t, std::string_view key,
                                               const std::string& path) const {
  const toml::node* n = t.get(key);
  if (!n) return std::optional<std::string>();
  if (!n->is_string()) return Fail(*n, path + "." + std::string(key), "must be a string");
  return std::optional<std::string>(n->as_string()->get());
}

Result<std::string> Parser::NeedStr(const toml::table& t, std::string_view key, const std::string& path) const {
  CM_ASSIGN_OR_RETURN(std::optional<std::string> v, Str(t, key, path));
  if (!v) return Fail(t, path + "." + std::string(key), "missing");
  return std::move(*v);
}

Result<std::optional<int64_t>> Parser::Int(const toml::table& t, std::string_view key, const std::string& path,
                                           int64_t lo, int64_t hi) const {
  const toml::node* n = t.get(key);
  if (!n) return std::optional<int64_t>();
  const std::string field = path + "." + std::string(key);
  if (!n->is_integer()) return Fail(*n, field, "must be an integer");
  int64_t v = n->as_integer()->get();
  if (v < lo || v > hi) {
    return Fail(*n, field, std::to_string(v) + " is out of range (" + std::to_string(lo) + ".." +
                               std::to_string(hi) + ")");
  }
  return std::optional<int64_t>(v);
}

Result<proto::Address> Parser::Endpoint(const toml::table& t, std::string_view key, const std::string& path) const {
  CM_ASSIGN_OR_RETURN(std::string text, NeedStr(t, key, path));
  proto::Address a;
  if (!proto::ParseAddress(text, &a) || a.port == 0)
    return Fail(*t.get(key), path + "." + std::string(key), Quote(text) + " is not ADDR:PORT (IPv4, port 1..65535)");
  return a;
}

Status Parser::ParseCcm(const toml::table& t, CcmConfig* ccm) {
  const std::string path = "ccm";
  CM_RETURN_IF_ERROR(
      CheckKeys(t, {"listen", "url", "leader_reports", "order", "relay_port", "uplink_mbit"}, false, path));
  CM_ASSIGN_OR_RETURN(ccm->listen, Endpoint(t, "listen", path));
  CM_ASSIGN_OR_RETURN(std::optional<int64_t> uplink, Int(t, "uplink_mbit", path, 1, 1'000'000));
  if (uplink) ccm->uplink_mbit = static_cast<uint32_t>(*uplink);
  CM_ASSIGN_OR_RETURN(std::optional<int64_t> port, Int(t, "relay_port", path, 1, 65535));
  if (port) ccm->relay_port = static_cast<uint16_t>(*port);
  if (t.get("leader_reports"))  // the raw TCP listener is gone: cm-leader reports come over HTTP
    return Fail(*t.get("leader_reports"), "ccm.leader_reports",
                "no longer exists: remove it and give cm-leader --ccm the CCM's HTTP address (ccm.listen), "
                "with --key-file");
  CM_ASSIGN_OR_RETURN(std::optional<std::string> url, Str(t, "url", path));
  if (url) {
    auto norm = NormalizeHttpUrl(*url);
    if (!norm) return Fail(*t.get("url"), "ccm.url", Quote(*url) + " is not http://HOST[:PORT]");
    ccm->url = *norm;
  } else if (ccm->listen.ip == 0) {
    return Fail(*t.get("listen"), "ccm.listen", "0.0.0.0 is no address relays can reach; add ccm.url");
  } else {
    ccm->url = "http://" + ccm->listen.ToString();
  }
  return Status::Ok();
}

Status Parser::ParseOrder(const toml::table& t, SitesConfig* cfg) {
  const toml::node* n = t.get("order");
  if (!n) return Status::Ok();
  const toml::array* arr = n->as_array();
  if (!arr) return Fail(*n, "ccm.order", "must be an array of site names");
  for (const toml::node& e : *arr) {
    if (!e.is_string()) return Fail(e, "ccm.order", "must be an array of site names");
    const std::string& name = e.as_string()->get();
    if (!cfg->FindSite(name)) return Fail(e, "ccm.order", Quote(name) + " is not a site of this file");
    if (std::find(cfg->ccm.order.begin(), cfg->ccm.order.end(), name) != cfg->ccm.order.end())
      return Fail(e, "ccm.order", Quote(name) + " is listed twice");
    cfg->ccm.order.push_back(name);
  }
  return Status::Ok();
}

Status Parser::ParseFacts(const toml::table& t, const std::string& path, ServerFacts* f) const {
  CM_ASSIGN_OR_RETURN(std::optional<int64_t> cpu, Int(t, "cpu_permille", path, 0, 1000));
  if (cpu) f->cpu_permille = static_cast<uint32_t>(*cpu);
  CM_ASSIGN_OR_RETURN(std::optional<int64_t> rate, Int(t, "rate_mbit", path, 1, 1'000'000));
  if (rate) f->rate_mbit = static_cast<uint32_t>(*rate);
  CM_ASSIGN_OR_RETURN(std::optional<int64_t> rel, Int(t, "reliability_permille", path, 0, 1000));
  if (rel) f->reliability_permille = static_cast<uint32_t>(*rel);
  CM_ASSIGN_OR_RETURN(std::optional<std::string> loc, Str(t, "location", path));
  if (loc) f->location = *loc;
  CM_ASSIGN_OR_RETURN(std::optional<std::string> tz, Str(t, "tz", path));
  if (tz) {
    auto off = ParseUtcOffset(*tz);
    if (!off) return Fail(*t.get("tz"), path + ".tz", Quote(*tz) + " is not a UTC offset +HH:MM (-12:00..+14:00)");
    f->utc_offset_min = *off;
  }
  return Status::Ok();
}

Status Parser::ParseServer(const toml::table& t, const std::string& site_path, size_t index, uint16_t relay_port,
                           Server* s) {
  std::string path = site_path + ".server[#" + std::to_string(index + 1) + "]";
  s->line = static_cast<int>(t.source().begin.line);
  CM_ASSIGN_OR_RETURN(s->name, NeedStr(t, "name", path));
  if (!IsValidName(s->name))
    return Fail(*t.get("name"), path + ".name", Quote(s->name) + " is not [A-Za-z0-9._-]{1,64}");
  path = site_path + ".server[" + s->name + "]";
  if (auto it = server_seen_.find(s->name); it != server_seen_.end()) {
    return Fail(*t.get("name"), path + ".name",
                Quote(s->name) + " is already a server of site " + it->second.site + " (line " +
                    std::to_string(it->second.line) + ")");
  }
  server_seen_[s->name] = Seen{s->site, s->line};
  CM_RETURN_IF_ERROR(CheckKeys(t, {"name", "address", "url"}, true, path));
  CM_ASSIGN_OR_RETURN(s->address, NeedStr(t, "address", path));
  auto ip = ParseIpv4(s->address);
  if (!ip) return Fail(*t.get("address"), path + ".address", Quote(s->address) + " is not an IPv4 address");
  if (*ip == 0 || *ip == 0xffffffffu || (*ip >> 28) == 0xe)
    return Fail(*t.get("address"), path + ".address", Quote(s->address) + " is not a unicast address");
  if (auto it = ips_.find(*ip); it != ips_.end()) {
    return Fail(*t.get("address"), path + ".address",
                s->address + " is already the address of server " + it->second.first + " (line " +
                    std::to_string(it->second.second) + ")");
  }
  s->ip = *ip;
  ips_[*ip] = {s->name, s->line};
  CM_ASSIGN_OR_RETURN(std::optional<std::string> url, Str(t, "url", path));
  if (url) {
    auto norm = NormalizeHttpUrl(*url);
    if (!norm) return Fail(*t.get("url"), path + ".url", Quote(*url) + " is not http://HOST[:PORT]");
    s->url = *norm;
  } else {
    s->url = "http://" + s->address + ":" + std::to_string(relay_port);
  }
  return ParseFacts(t, path, &s->facts);
}

Status Parser::ParseSite(const toml::table& t, size_t index, uint16_t relay_port, Site* site) {
  std::string path = "site[#" + std::to_string(index + 1) + "]";
  site->line = static_cast<int>(t.source().begin.line);
  CM_ASSIGN_OR_RETURN(site->name, NeedStr(t, "name", path));
  if (!IsValidName(site->name))
    return Fail(*t.get("name"), path + ".name", Quote(site->name) + " is not [A-Za-z0-9._-]{1,64}");
  path = "site[" + site->name + "]";
  if (auto it = site_lines_.find(site->name); it != site_lines_.end()) {
    return Fail(*t.get("name"), path + ".name",
                Quote(site->name) + " is already the name of the site at line " + std::to_string(it->second));
  }
  site_lines_[site->name] = site->line;
  CM_RETURN_IF_ERROR(CheckKeys(t, {"name", "group", "leader", "server"}, true, path));
  CM_ASSIGN_OR_RETURN(site->group, Endpoint(t, "group", path));
  if (!site->group.IsMulticast())
    return Fail(*t.get("group"), path + ".group", site->group.ToString() + " is not a multicast group (224.0.0.0/4)");
  CM_RETURN_IF_ERROR(ParseFacts(t, path, &site->facts));

  const toml::node* servers = t.get("server");
  if (!servers) return Fail(t, path + ".server", "missing: a site needs at least one [[site.server]]");
  const toml::array* arr = servers->as_array();
  if (!arr || arr->empty() || !arr->is_array_of_tables())
    return Fail(*servers, path + ".server", "must be [[site.server]] tables, at least one");
  for (size_t i = 0; i < arr->size(); ++i) {
    Server s;
    s.site = site->name;
    s.facts = site->facts;  // the server's own facts override these
    CM_RETURN_IF_ERROR(ParseServer(*arr->get(i)->as_table(), path, i, relay_port, &s));
    site->servers.push_back(std::move(s));
  }

  CM_ASSIGN_OR_RETURN(std::optional<std::string> leader, Str(t, "leader", path));
  if (leader) {
    bool found = std::any_of(site->servers.begin(), site->servers.end(),
                             [&](const Server& s) { return s.name == *leader; });
    if (!found) return Fail(*t.get("leader"), path + ".leader", Quote(*leader) + " is not a server of this site");
    site->leader = *leader;
  }
  return Status::Ok();
}

Result<SitesConfig> Parser::Run(const toml::table& root) {
  SitesConfig cfg;
  cfg.source = file_;
  CM_RETURN_IF_ERROR(CheckKeys(root, {"ccm", "site"}, false, ""));
  const toml::node* ccm = root.get("ccm");
  if (!ccm) return Fail(root, "ccm", "missing: the file needs a [ccm] table");
  if (!ccm->is_table()) return Fail(*ccm, "ccm", "must be a table");
  CM_RETURN_IF_ERROR(ParseCcm(*ccm->as_table(), &cfg.ccm));

  const toml::node* sites = root.get("site");
  if (!sites) return Fail(root, "site", "missing: the file needs at least one [[site]]");
  const toml::array* arr = sites->as_array();
  if (!arr || arr->empty() || !arr->is_array_of_tables())
    return Fail(*sites, "site", "must be [[site]] tables, at least one");
  for (size_t i = 0; i < arr->size(); ++i) {
    Site site;
    CM_RETURN_IF_ERROR(ParseSite(*arr->get(i)->as_table(), i, cfg.ccm.relay_port, &site));
    cfg.sites.push_back(std::move(site));
  }
  CM_RETURN_IF_ERROR(ParseOrder(*ccm->as_table(), &cfg));
  return cfg;
}

}  // namespace

std::optional<uint32_t> ParseIpv4(std::string_view s) {
  proto::Address a;
  if (s.find(':') != std::string_view::npos || !proto::ParseAddress(std::string(s) + ":0", &a)) return std::nullopt;
  return a.ip;
}

const Site* SitesConfig::FindSite(std::string_view name) const {
  for (const Site& s : sites)
    if (s.name == name) return &s;
  return nullptr;
}

const Server* SitesConfig::FindServer(std::string_view name) const {
  for (const Site& site : sites)
    for (const Server& s : site.servers)
      if (s.name == name) return &s;
  return nullptr;
}

const Server* SitesConfig::ServerByIp(uint32_t ip) const {
  for (const Site& site : sites)
    for (const Server& s : site.servers)
      if (s.ip == ip) return &s;
  return nullptr;
}

const Server* SitesConfig::ServerByAddress(std::string_view address) const {
  if (auto colon = address.find(':'); colon != std::string_view::npos) {
    proto::Address a;
    if (!proto::ParseAddress(address, &a)) return nullptr;
    return ServerByIp(a.ip);
  }
  auto ip = ParseIpv4(address);
  return ip ? ServerByIp(*ip) : nullptr;
}

const Site* SitesConfig::SiteOf(std::string_view server) const {
  const Server* s = FindServer(server);
  return s ? FindSite(s->site) : nullptr;
}

size_t SitesConfig::ServerCount() const {
  size_t n = 0;
  for (const Site& s : sites) n += s.servers.size();
  return n;
}

Result<SitesConfig> ParseSites(std::string_view text, const std::string& name) {
  toml::table root;
  try {
    root = toml::parse(text, std::string_view(name));
  } catch (const toml::parse_error& err) {
    // toml++ reports syntax errors only by exception; they stop here.
    return Error(Code::kUsage, name + ":" + std::to_string(err.source().begin.line) + ": " +
                                   std::string(err.description()));
  }
  return Parser(name).Run(root);
}

Result<SitesConfig> LoadSites(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return Error(Code::kUsage, text.status().message());
  return ParseSites(*text, path);
}

Status RestrictToOnly(SitesConfig* sites, const std::vector<std::string>& only, const std::string& file) {
  if (only.empty()) return Status::Ok();
  std::set<std::string> want(only.begin(), only.end()), used;
  for (auto& site : sites->sites) {
    std::vector<Server> keep;
    for (auto& srv : site.servers)
      if (want.count(srv.name) || want.count(site.name)) {
        used.insert(want.count(srv.name) ? srv.name : site.name);
        keep.push_back(srv);
      }
    site.servers = std::move(keep);
  }
  for (const auto& w : want)
    if (!used.count(w) && !sites->FindSite(w))
      return Error(Code::kUsage, "--only " + w + ": no such server or site in " + file);
  std::erase_if(sites->sites, [](const Site& s) { return s.servers.empty(); });
  if (sites->sites.empty()) return Error(Code::kUsage, "--only: no server left to push to");
  return Status::Ok();
}

}  // namespace cm::push
