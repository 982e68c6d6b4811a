// The CCM's sites file: parsing, validation with one-line errors, lookups.
#include "push/sites.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "support/test_util.h"
#include "util/exit_codes.h"

namespace cm::push {
namespace {

constexpr char kMinimal[] = R"(
[ccm]
listen = "198.18.0.1:7700"

[[site]]
name = "ams"
group = "239.192.0.1:7800"

[[site.server]]
name = "ams-1"
address = "198.18.1.10"
)";

std::string SourceDir() {
  if (const char* s = std::getenv("CM_SRC"); s && *s) return s;
  std::string f = __FILE__;  // <src>/tests/unit/push/sites_test.cc
  for (int i = 0; i < 4; ++i) f = f.substr(0, f.rfind('/'));
  return f;
}

// The error of parsing `text` as "sites.toml"; fails the test when it parses.
std::string ErrorOf(const std::string& text) {
  auto r = ParseSites(text, "sites.toml");
  EXPECT_FALSE(r.ok()) << "parsed:\n" << text;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), Code::kUsage) << r.status().ToString();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos) << "one line";
  return r.status().message();
}

// kMinimal with `line` replaced by `with` (which may be several lines or "").
std::string Edit(const std::string& line, const std::string& with) {
  std::string s = kMinimal;
  auto at = s.find(line);
  EXPECT_NE(at, std::string::npos) << line;
  return s.replace(at, line.size(), with);
}

TEST(SitesTest, ExampleFileParses) {
  auto r = LoadSites(SourceDir() + "/docs/examples/sites.toml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const SitesConfig& c = *r;
  EXPECT_EQ(c.ccm.listen.ToString(), "198.18.0.1:7700");
  EXPECT_EQ(c.ccm.url, "http://198.18.0.1:7700");
  EXPECT_EQ(c.ccm.order, (std::vector<std::string>{"ams", "fra"}));
  EXPECT_EQ(c.ccm.relay_port, 7710);
  ASSERT_EQ(c.sites.size(), 3u);
  EXPECT_EQ(c.ServerCount(), 6u);
  const Site& ams = c.sites[0];
  EXPECT_EQ(ams.name, "ams");
  EXPECT_EQ(ams.group.ToString(), "239.192.0.1:7800");
  EXPECT_EQ(ams.leader, "ams-1");
  ASSERT_EQ(ams.servers.size(), 3u);
  EXPECT_EQ(ams.servers[0].url, "http://198.18.1.10:7710");
  EXPECT_EQ(ams.servers[0].site, "ams");
  EXPECT_EQ(c.FindServer("fra-2")->url, "http://198.18.2.11:8710");
  EXPECT_EQ(c.sites[2].leader, "");
}

TEST(SitesTest, ServerFactsOverrideTheirSites) {
  auto r = LoadSites(SourceDir() + "/docs/examples/sites.toml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Server* a1 = r->FindServer("ams-1");
  ASSERT_NE(a1, nullptr);
  EXPECT_EQ(a1->facts.cpu_permille, 100u);
  EXPECT_EQ(a1->facts.rate_mbit, 1000u);  // from the site
  EXPECT_EQ(a1->facts.utc_offset_min, 60);
  EXPECT_EQ(a1->facts.location, "Amsterdam");
  EXPECT_FALSE(a1->facts.reliability_permille);
  EXPECT_EQ(r->FindServer("ams-2")->facts.reliability_permille, 990u);
  EXPECT_EQ(r->FindServer("fra-1")->facts.rate_mbit, 400u);
  EXPECT_FALSE(r->FindServer("fra-2")->facts.rate_mbit);
  EXPECT_EQ(r->FindServer("nyc-1")->facts.utc_offset_min, -300);
  EXPECT_EQ(r->sites[0].facts.rate_mbit, 1000u);
  EXPECT_FALSE(r->sites[0].facts.cpu_permille);
}

TEST(SitesTest, MinimalFileGetsDefaults) {
  auto r = ParseSites(kMinimal, "sites.toml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->source, "sites.toml");
  EXPECT_EQ(r->ccm.relay_port, kDefaultRelayPort);
  EXPECT_TRUE(r->ccm.order.empty());
  EXPECT_EQ(r->sites[0].servers[0].url, "http://198.18.1.10:7710");
  EXPECT_EQ(r->sites[0].servers[0].line, 9);
  EXPECT_EQ(r->sites[0].line, 5);
}

TEST(SitesTest, LookupsByNameIpAndReportAddress) {
  auto r = LoadSites(SourceDir() + "/docs/examples/sites.toml");
  ASSERT_TRUE(r.ok());
  const SitesConfig& c = *r;
  EXPECT_EQ(c.FindSite("fra")->name, "fra");
  EXPECT_EQ(c.FindSite("lon"), nullptr);
  EXPECT_EQ(c.FindServer("nope"), nullptr);
  EXPECT_EQ(c.ServerByIp(ParseIpv4("198.18.2.10").value())->name, "fra-1");
  EXPECT_EQ(c.ServerByIp(0x01020304), nullptr);
  // A cm-leader report's leader_address carries the control port.
  EXPECT_EQ(c.ServerByAddress("198.18.1.11:7900")->name, "ams-2");
  EXPECT_EQ(c.ServerByAddress("198.18.1.11")->name, "ams-2");
  EXPECT_EQ(c.ServerByAddress("198.18.1.99:7900"), nullptr);
  EXPECT_EQ(c.ServerByAddress("garbage"), nullptr);
  EXPECT_EQ(c.ServerByAddress("198.18.1.11:x"), nullptr);
  EXPECT_EQ(c.SiteOf("ams-3")->name, "ams");
  EXPECT_EQ(c.SiteOf("nyc-1")->name, "nyc");
  EXPECT_EQ(c.SiteOf("nope"), nullptr);
}

TEST(SitesTest, ParseIpv4) {
  EXPECT_EQ(ParseIpv4("10.0.0.1"), 0x0a000001u);
  EXPECT_FALSE(ParseIpv4("10.0.0"));
  EXPECT_FALSE(ParseIpv4("10.0.0.256"));
  EXPECT_FALSE(ParseIpv4("10.0.0.1:80"));
  EXPECT_FALSE(ParseIpv4(""));
  EXPECT_FALSE(ParseIpv4("host.example"));
}

TEST(SitesTest, ErrorsAreKUsageExitTwo) {
  auto r = ParseSites("[ccm", "sites.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ExitCodeFor(r.status()), kExitUsage);
  EXPECT_EQ(r.status().message().rfind("sites.toml:1: ", 0), 0u) << r.status().message();
}

TEST(SitesTest, TomlSyntaxErrorNamesTheLine) {
  std::string e = ErrorOf(Edit("name = \"ams-1\"", "name = \"ams-1\"\nname = \"again\""));
  EXPECT_EQ(e.rfind("sites.toml:11: ", 0), 0u) << e;
}

TEST(SitesTest, MissingFileIsUsage) {
  auto r = LoadSites("/nonexistent/sites.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kUsage);
  EXPECT_NE(r.status().message().find("/nonexistent/sites.toml"), std::string::npos);
}

TEST(SitesTest, BadServerAddressNamesFileLineAndField) {
  EXPECT_EQ(ErrorOf(Edit("198.18.1.10", "198.18.1.x")),
            "sites.toml:11: site[ams].server[ams-1].address: \"198.18.1.x\" is not an IPv4 address");
  EXPECT_EQ(ErrorOf(Edit("198.18.1.10", "239.1.1.1")),
            "sites.toml:11: site[ams].server[ams-1].address: \"239.1.1.1\" is not a unicast address");
  EXPECT_EQ(ErrorOf(Edit("198.18.1.10", "198.18.1.10:7710")),
            "sites.toml:11: site[ams].server[ams-1].address: \"198.18.1.10:7710\" is not an IPv4 address");
}

TEST(SitesTest, GroupMustBeMulticastWithAPort) {
  EXPECT_EQ(ErrorOf(Edit("239.192.0.1:7800", "198.18.0.9:7800")),
            "sites.toml:7: site[ams].group: 198.18.0.9:7800 is not a multicast group (224.0.0.0/4)");
  EXPECT_EQ(ErrorOf(Edit("239.192.0.1:7800", "239.192.0.1:0")),
            "sites.toml:7: site[ams].group: \"239.192.0.1:0\" is not ADDR:PORT (IPv4, port 1..65535)");
  EXPECT_EQ(ErrorOf(Edit("239.192.0.1:7800", "239.192.0.1:70000")),
            "sites.toml:7: site[ams].group: \"239.192.0.1:70000\" is not ADDR:PORT (IPv4, port 1..65535)");
}

// The raw TCP listener for cm-leader reports is gone (they come to the HTTP
// server): a file that still names one is refused, saying what to do.
TEST(SitesTest, TheOldLeaderReportsListenerIsRefusedWithWhatToDo) {
  EXPECT_EQ(ErrorOf(Edit("listen = \"198.18.0.1:7700\"", "listen = \"198.18.0.1:7700\"\nleader_reports = \"198.18.0.1:7701\"")),
            "sites.toml:4: ccm.leader_reports: no longer exists: remove it and give cm-leader --ccm the CCM's HTTP "
            "address (ccm.listen), with --key-file");
}

TEST(SitesTest, PortsInRange) {
  EXPECT_EQ(ErrorOf(Edit("listen = \"198.18.0.1:7700\"", "listen = \"198.18.0.1:7700\"\nrelay_port = 0")),
            "sites.toml:4: ccm.relay_port: 0 is out of range (1..65535)");
  EXPECT_EQ(ErrorOf(Edit("listen = \"198.18.0.1:7700\"", "listen = \"198.18.0.1:7700\"\nrelay_port = 65536")),
            "sites.toml:4: ccm.relay_port: 65536 is out of range (1..65535)");
  EXPECT_EQ(ErrorOf(Edit("listen = \"198.18.0.1:7700\"", "listen = \"198.18.0.1\"")),
            "sites.toml:3: ccm.listen: \"198.18.0.1\" is not ADDR:PORT (IPv4, port 1..65535)");
  EXPECT_EQ(ErrorOf(Edit("address = \"198.18.1.10\"", "address = \"198.18.1.10\"\nurl = \"http://h:0\"")),
            "sites.toml:12: site[ams].server[ams-1].url: \"http://h:0\" is not http://HOST[:PORT]");
}

TEST(SitesTest, WildcardListenNeedsAUrl) {
  EXPECT_EQ(ErrorOf(Edit("198.18.0.1:7700", "0.0.0.0:7700")),
            "sites.toml:3: ccm.listen: 0.0.0.0 is no address relays can reach; add ccm.url");
  auto r = ParseSites(
      Edit("listen = \"198.18.0.1:7700\"", "listen = \"0.0.0.0:7700\"\nurl = \"http://ccm.example:7700/\""),
      "sites.toml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->ccm.url, "http://ccm.example:7700");
}

TEST(SitesTest, UrlsAreCheckedAndNormalized) {
  auto r = ParseSites(Edit("address = \"198.18.1.10\"", "address = \"127.0.0.2\"\nurl = \"http://127.0.0.1:7711/\""),
                      "sites.toml");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->sites[0].servers[0].url, "http://127.0.0.1:7711");
  for (const char* bad : {"https://h:1", "http://", "http://h/path", "ftp://h", "http://h:"}) {
    std::string e = ErrorOf(Edit("address = \"198.18.1.10\"", std::string("address = \"198.18.1.10\"\nurl = \"") +
                                                                  bad + "\""));
    EXPECT_NE(e.find("site[ams].server[ams-1].url: \"" + std::string(bad) + "\" is not http://HOST[:PORT]"),
              std::string::npos)
        << e;
  }
}

TEST(SitesTest, DuplicateSiteNames) {
  std::string text = std::string(kMinimal) + R"(
[[site]]
name = "ams"
group = "239.192.0.2:7800"
[[site.server]]
name = "ams-9"
address = "198.18.1.19"
)";
  EXPECT_EQ(ErrorOf(text), "sites.toml:14: site[ams].name: \"ams\" is already the name of the site at line 5");
}

TEST(SitesTest, DuplicateServerNamesAcrossSites) {
  std::string text = std::string(kMinimal) + R"(
[[site]]
name = "fra"
group = "239.192.0.2:7800"
[[site.server]]
name = "ams-1"
address = "198.18.2.10"
)";
  EXPECT_EQ(ErrorOf(text),
            "sites.toml:17: site[fra].server[ams-1].name: \"ams-1\" is already a server of site ams (line 9)");
}

TEST(SitesTest, DuplicateServerAddresses) {
  std::string text = std::string(kMinimal) + R"(
[[site.server]]
name = "ams-2"
address = "198.18.1.10"
)";
  EXPECT_EQ(ErrorOf(text),
            "sites.toml:15: site[ams].server[ams-2].address: 198.18.1.10 is already the address of server ams-1 "
            "(line 9)");
}

TEST(SitesTest, EverySiteNeedsAServer) {
  std::string text = R"([ccm]
listen = "198.18.0.1:7700"
[[site]]
name = "ams"
group = "239.192.0.1:7800"
)";
  EXPECT_EQ(ErrorOf(text), "sites.toml:3: site[ams].server: missing: a site needs at least one [[site.server]]");
  EXPECT_EQ(ErrorOf(text + "server = []\n"),
            "sites.toml:6: site[ams].server: must be [[site.server]] tables, at least one");
}

TEST(SitesTest, FileNeedsCcmAndSites) {
  EXPECT_EQ(ErrorOf("[[site]]\nname = \"a\"\n"), "sites.toml:1: ccm: missing: the file needs a [ccm] table");
  EXPECT_EQ(ErrorOf("[ccm]\nlisten = \"198.18.0.1:7700\"\n"),
            "sites.toml:1: site: missing: the file needs at least one [[site]]");
  EXPECT_EQ(ErrorOf("ccm = 3\n"), "sites.toml:1: ccm: must be a table");
}

TEST(SitesTest, MissingRequiredFields) {
  EXPECT_EQ(ErrorOf(Edit("listen = \"198.18.0.1:7700\"", "")), "sites.toml:2: ccm.listen: missing");
  EXPECT_EQ(ErrorOf(Edit("name = \"ams\"", "")), "sites.toml:5: site[#1].name: missing");
  EXPECT_EQ(ErrorOf(Edit("group = \"239.192.0.1:7800\"", "")), "sites.toml:5: site[ams].group: missing");
  EXPECT_EQ(ErrorOf(Edit("name = \"ams-1\"", "")), "sites.toml:9: site[ams].server[#1].name: missing");
  EXPECT_EQ(ErrorOf(Edit("address = \"198.18.1.10\"", "")), "sites.toml:9: site[ams].server[ams-1].address: missing");
}

TEST(SitesTest, WrongTypesAndBadNames) {
  EXPECT_EQ(ErrorOf(Edit("name = \"ams\"", "name = 5")), "sites.toml:6: site[#1].name: must be a string");
  EXPECT_EQ(ErrorOf(Edit("name = \"ams\"", "name = \"a b\"")),
            "sites.toml:6: site[#1].name: \"a b\" is not [A-Za-z0-9._-]{1,64}");
  EXPECT_EQ(ErrorOf(Edit("name = \"ams-1\"", "name = \"\"")),
            "sites.toml:10: site[ams].server[#1].name: \"\" is not [A-Za-z0-9._-]{1,64}");
  EXPECT_EQ(ErrorOf(Edit("listen = \"198.18.0.1:7700\"", "listen = \"198.18.0.1:7700\"\nrelay_port = \"7710\"")),
            "sites.toml:4: ccm.relay_port: must be an integer");
}

TEST(SitesTest, UnknownKeysAreErrors) {
  EXPECT_EQ(ErrorOf(Edit("address = \"198.18.1.10\"", "address = \"198.18.1.10\"\nadress = \"1.2.3.4\"")),
            "sites.toml:12: site[ams].server[ams-1].adress: unknown key");
  EXPECT_EQ(ErrorOf(Edit("group = \"239.192.0.1:7800\"", "group = \"239.192.0.1:7800\"\nleeder = \"x\"")),
            "sites.toml:8: site[ams].leeder: unknown key");
  EXPECT_EQ(ErrorOf(Edit("listen = \"198.18.0.1:7700\"", "listen = \"198.18.0.1:7700\"\nlisten_port = 1")),
            "sites.toml:4: ccm.listen_port: unknown key");
  EXPECT_EQ(ErrorOf(std::string("sites = 1\n") + kMinimal), "sites.toml:1: sites: unknown key");
}

TEST(SitesTest, LeaderMustBeAServerOfItsSite) {
  EXPECT_EQ(ErrorOf(Edit("group = \"239.192.0.1:7800\"", "group = \"239.192.0.1:7800\"\nleader = \"fra-1\"")),
            "sites.toml:8: site[ams].leader: \"fra-1\" is not a server of this site");
}

TEST(SitesTest, OrderNamesKnownSitesOnce) {
  auto with_order = [](const std::string& order) {
    return Edit("listen = \"198.18.0.1:7700\"", "listen = \"198.18.0.1:7700\"\norder = " + order);
  };
  EXPECT_EQ(ErrorOf(with_order("[\"lon\"]")), "sites.toml:4: ccm.order: \"lon\" is not a site of this file");
  EXPECT_EQ(ErrorOf(with_order("[\"ams\", \"ams\"]")), "sites.toml:4: ccm.order: \"ams\" is listed twice");
  EXPECT_EQ(ErrorOf(with_order("\"ams\"")), "sites.toml:4: ccm.order: must be an array of site names");
  EXPECT_EQ(ErrorOf(with_order("[1]")), "sites.toml:4: ccm.order: must be an array of site names");
}

TEST(SitesTest, FactsAreRangeChecked) {
  auto with = [](const std::string& kv) {
    return Edit("address = \"198.18.1.10\"", "address = \"198.18.1.10\"\n" + kv);
  };
  EXPECT_EQ(ErrorOf(with("cpu_permille = 1001")),
            "sites.toml:12: site[ams].server[ams-1].cpu_permille: 1001 is out of range (0..1000)");
  EXPECT_EQ(ErrorOf(with("rate_mbit = 0")),
            "sites.toml:12: site[ams].server[ams-1].rate_mbit: 0 is out of range (1..1000000)");
  EXPECT_EQ(ErrorOf(with("reliability_permille = -1")),
            "sites.toml:12: site[ams].server[ams-1].reliability_permille: -1 is out of range (0..1000)");
  EXPECT_EQ(ErrorOf(with("cpu_permille = 1.5")),
            "sites.toml:12: site[ams].server[ams-1].cpu_permille: must be an integer");
  for (const char* tz : {"+1:00", "01:00", "+01:60", "+15:00", "-12:30", "UTC"}) {
    std::string e = ErrorOf(with(std::string("tz = \"") + tz + "\""));
    EXPECT_EQ(e, "sites.toml:12: site[ams].server[ams-1].tz: \"" + std::string(tz) +
                     "\" is not a UTC offset +HH:MM (-12:00..+14:00)");
  }
  auto ok = ParseSites(with("tz = \"+05:45\"\nlocation = \"Kathmandu\""), "sites.toml");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->sites[0].servers[0].facts.utc_offset_min, 5 * 60 + 45);
  auto west = ParseSites(with("tz = \"-12:00\""), "sites.toml");
  ASSERT_TRUE(west.ok());
  EXPECT_EQ(west->sites[0].servers[0].facts.utc_offset_min, -720);
}

TEST(SitesTest, GarbageNeverEscapesAsAnException) {
  // toml++ reports syntax errors by exception; ParseSites must turn every one into a Status.
  const std::string base = kMinimal;
  for (size_t cut = 0; cut < base.size(); ++cut) {
    for (char c : {'[', '"', '=', '\n', '\0', '\xff'}) {
      std::string text = base.substr(0, cut) + c + base.substr(cut + 1);
      auto r = ParseSites(text, "x.toml");
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), Code::kUsage);
      }
    }
  }
}

}  // namespace
}  // namespace cm::push
