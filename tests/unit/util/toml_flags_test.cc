#include "util/toml_flags.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>

namespace cm {
namespace {

struct Opts {
  std::string group;
  int passes = 4;
  double heartbeat = 0;
  bool json = false;
  std::vector<uint64_t> leaders;
  std::vector<std::string> receivers;
};

// A tool's options, parsed from `args`, with the same variables bound to TOML keys.
struct Tool {
  Opts o;
  CLI::App app{"test"};
  TomlFlags toml;
  explicit Tool(std::vector<std::string> args) {
    auto* g = app.add_option("--group", o.group);
    auto* p = app.add_option("--max-passes", o.passes);
    auto* h = app.add_option("--heartbeat", o.heartbeat);
    auto* j = app.add_flag("--json", o.json);
    auto* l = app.add_option("--leaders", o.leaders);
    toml.Bind("group", &o.group, g)
        .Bind("max_passes", &o.passes, p)
        .Bind("heartbeat", &o.heartbeat, h)
        .Bind("json", &o.json, j)
        .Bind("leaders", &o.leaders, l)
        .Bind("receivers", &o.receivers, nullptr);
    std::reverse(args.begin(), args.end());
    app.parse(args);
  }
};

TEST(TomlFlags, AFlagTheUserGaveWins) {
  Tool t({"--group", "239.1.1.1:9000", "--max-passes", "7"});
  ASSERT_TRUE(t.toml.ApplyText("group = \"239.9.9.9:1\"\nmax_passes = 2\n", "a.toml").ok());
  EXPECT_EQ(t.o.group, "239.1.1.1:9000");
  EXPECT_EQ(t.o.passes, 7);
}

TEST(TomlFlags, TomlFillsWhatTheUserDidNotGive) {
  Tool t({"--group", "239.1.1.1:9000"});
  Status st = t.toml.ApplyText(
      "group = \"239.9.9.9:1\"\nmax_passes = 2\nheartbeat = 1\njson = true\nleaders = [3, 5]\n"
      "receivers = [\"a\", \"b\"]\n",
      "a.toml");
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(t.o.group, "239.1.1.1:9000");
  EXPECT_EQ(t.o.passes, 2);
  EXPECT_EQ(t.o.heartbeat, 1.0);  // an integer is a fine double
  EXPECT_TRUE(t.o.json);
  EXPECT_EQ(t.o.leaders, (std::vector<uint64_t>{3, 5}));
  EXPECT_EQ(t.o.receivers, (std::vector<std::string>{"a", "b"}));
}

TEST(TomlFlags, AFlagEqualToTheDefaultStillWins) {
  Tool t({"--max-passes", "4"});  // the default value, but given
  ASSERT_TRUE(t.toml.ApplyText("max_passes = 9\n", "a.toml").ok());
  EXPECT_EQ(t.o.passes, 4);
}

TEST(TomlFlags, AnUnknownKeyIsAnErrorNamingIt) {
  Tool t({"--group", "239.1.1.1:9000"});
  Status st = t.toml.ApplyText("group = \"x\"\nlisten = \"1.2.3.4:5\"\n", "relay.toml");
  EXPECT_EQ(st.code(), Code::kUsage);
  EXPECT_EQ(st.message(), "relay.toml: unknown key 'listen'");
  EXPECT_EQ(st.message().find('\n'), std::string::npos);
}

TEST(TomlFlags, AWrongTypeIsAnErrorNamingTheKey) {
  Tool t({});
  Status st = t.toml.ApplyText("max_passes = \"many\"\n", "a.toml");
  EXPECT_EQ(st.code(), Code::kUsage);
  EXPECT_NE(st.message().find("'max_passes'"), std::string::npos) << st.message();
  EXPECT_EQ(t.toml.ApplyText("leaders = [-1]\n", "a.toml").code(), Code::kUsage);
  EXPECT_EQ(t.toml.ApplyText("max_passes = 99999999999\n", "a.toml").code(), Code::kUsage);
}

TEST(TomlFlags, ASyntaxErrorIsOneLineWithTheFileName) {
  Tool t({});
  Status st = t.toml.ApplyText("group = \n", "bad.toml");
  EXPECT_EQ(st.code(), Code::kUsage);
  EXPECT_EQ(st.message().rfind("bad.toml:", 0), 0u) << st.message();
}

TEST(TomlFlags, AMissingFileIsAUsageError) {
  Tool t({});
  EXPECT_EQ(t.toml.Apply("/nonexistent/cm.toml").code(), Code::kUsage);
}

}  // namespace
}  // namespace cm
