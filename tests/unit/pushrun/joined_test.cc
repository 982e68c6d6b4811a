// Servers that joined a site's cm-leader membership (pushrun/joined.h): found
// from the leader relays' verified answers, recorded, merged into the sites.
#include "pushrun/joined.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "util/file_util.h"

namespace cm::pushrun {
namespace {

push::SitesConfig Sites() {
  auto s = push::ParseSites(R"([ccm]
listen = "10.0.0.1:7700"
relay_port = 7711
[[site]]
name = "ams"
group = "239.1.1.1:7800"
[[site.server]]
name = "web1"
address = "10.1.0.10"
[[site.server]]
name = "web2"
address = "10.1.0.11"
[[site]]
name = "fra"
group = "239.1.1.2:7800"
[[site.server]]
name = "web5"
address = "10.2.0.10"
)",
                            "sites.toml");
  EXPECT_TRUE(s.ok()) << s.status().message();
  return *s;
}

TEST(Joined, MembersTheFileLacksAreFoundRecordedAndMerged) {
  const push::SitesConfig sites = Sites();
  std::map<std::string, ProbeAnswer> answers;
  answers["web1"].members = {{"web1", "10.1.0.10"},    // in the file
                             {"web3", "10.1.0.12"},    // new
                             {"web5", "10.1.0.13"},    // a name the file has (another site)
                             {"web4", "10.2.0.10"},    // an address the file has
                             {"bad name", "10.1.0.14"},
                             {"web6", "not-an-ip"}};
  const auto joined = FindJoiners(sites, answers);
  ASSERT_EQ(joined, (std::vector<JoinedServer>{{"ams", "web3", "10.1.0.12"}}));

  const std::string dir = std::filesystem::temp_directory_path() / ("cm-joined-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  push::SitesConfig merged = Sites();
  ASSERT_TRUE(MergeJoined(&merged, dir).ok());  // nothing recorded yet
  EXPECT_EQ(merged.ServerCount(), 3u);
  ASSERT_TRUE(RecordJoined(dir, joined).ok());
  ASSERT_TRUE(RecordJoined(dir, joined).ok());  // a duplicate is not recorded twice
  ASSERT_TRUE(MergeJoined(&merged, dir).ok());
  ASSERT_EQ(merged.ServerCount(), 4u);
  const push::Server* s = merged.FindServer("web3");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->site, "ams");
  EXPECT_EQ(s->url, "http://10.1.0.12:7711");
  EXPECT_EQ(merged.SiteOf("web3")->name, "ams");
  // Once the file names it, the record is ignored for it.
  push::SitesConfig later = Sites();
  later.sites[0].servers.push_back(*s);
  later.sites[0].servers.back().address = "10.1.0.99";
  ASSERT_TRUE(MergeJoined(&later, dir).ok());
  EXPECT_EQ(later.ServerCount(), 4u);
  // A damaged record is an error, not a silent empty list.
  ASSERT_TRUE(WriteFileAtomic(dir + "/joined.json", "{\"v\":7}").ok());
  EXPECT_FALSE(MergeJoined(&merged, dir).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cm::pushrun
