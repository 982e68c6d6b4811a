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
  EXPECT_EQ(st.message(), "relay.toml:2: listen: unknown key");
  EXPECT_EQ(st.message().find('\n'), std::string::npos);
}

TEST(TomlFlags, AWrongTypeIsAnErrorNamingTheKey) {
  Tool t({});
  Status st = t.toml.ApplyText("max_passes = \"many\"\n", "a.toml");
  EXPECT_EQ(st.code(), Code::kUsage);
  EXPECT_EQ(st.message(), "a.toml:1: max_passes: expected an integer in range");
  EXPECT_EQ(t.toml.ApplyText("leaders = [-1]\n", "a.toml").code(), Code::kUsage);
  EXPECT_EQ(t.toml.ApplyText("max_passes = 99999999999\n", "a.toml").code(), Code::kUsage);
}

TEST(TomlFlags, EveryErrorNamesTheLineOfItsKey) {
  Tool t({});
  EXPECT_EQ(t.toml.ApplyText("group = \"g\"\n\n# c\njson = 1\n", "a.toml").message(),
            "a.toml:4: json: expected true or false");
  EXPECT_EQ(t.toml.ApplyText("group = \"g\"\nheartbeat = \"x\"\n", "a.toml").message(),
            "a.toml:2: heartbeat: expected a number");
  EXPECT_EQ(t.toml.ApplyText("json = true\nreceivers = [\"a\", 3]\n", "a.toml").message(),
            "a.toml:2: receivers: expected an array of strings");
  EXPECT_EQ(t.toml.ApplyText("json = true\n[extra]\nx = 1\n", "a.toml").message(), "a.toml:2: extra: unknown key");
}

TEST(TomlFlags, AWrongTypeIsAnErrorEvenWhenTheFlagWins) {
  // A typo in the file must not hide behind today's command line.
  Tool t({"--max-passes", "7"});
  Status st = t.toml.ApplyText("max_passes = \"many\"\n", "a.toml");
  EXPECT_EQ(st.message(), "a.toml:1: max_passes: expected an integer in range");
  EXPECT_EQ(t.o.passes, 7);
}

TEST(TomlFlags, RequireChecksTheValueTakenFromTheFile) {
  Tool t({});
  t.toml.Bind("min", &t.o.heartbeat, nullptr).Require([&] { return t.o.heartbeat >= 0; }, "seconds >= 0");
  EXPECT_EQ(t.toml.ApplyText("max_passes = 3\nmin = -1\n", "a.toml").message(), "a.toml:2: min: expected seconds >= 0");
  EXPECT_TRUE(t.toml.ApplyText("min = 2.5\n", "a.toml").ok());
  EXPECT_EQ(t.o.heartbeat, 2.5);
}

TEST(TomlFlags, RequireIsNotAskedOfAValueTheFlagGave) {
  Tool t({"--heartbeat", "-3"});
  t.toml.Bind("heartbeat2", &t.o.heartbeat, t.app.get_option("--heartbeat"))
      .Require([&] { return t.o.heartbeat >= 0; }, "seconds >= 0");
  EXPECT_TRUE(t.toml.ApplyText("heartbeat2 = 1\n", "a.toml").ok());
  EXPECT_EQ(t.o.heartbeat, -3.0);
}

TEST(TomlFlags, AListBoundWithoutAFlagIsAlwaysFilled) {
  // cm-delta's exclude: the file's globs, to which the tool adds --exclude's.
  Tool t({});
  std::vector<std::string> excludes{"old"};
  t.toml.Bind("exclude", &excludes, nullptr);
  ASSERT_TRUE(t.toml.ApplyText("exclude = [\"*.o\", \"/cache/\"]\n", "a.toml").ok());
  EXPECT_EQ(excludes, (std::vector<std::string>{"*.o", "/cache/"}));
  ASSERT_TRUE(t.toml.ApplyText("exclude = []\n", "a.toml").ok());
  EXPECT_TRUE(excludes.empty());
}

TEST(TomlFlags, AKeyWithTwoFlagsIsFilledOnlyWhenNeitherWasGiven) {
  for (const char* given : {"", "--checksum", "--no-checksum"}) {
    bool checksum = false, no_checksum = false, value = false;
    CLI::App app{"test"};
    auto* c = app.add_flag("--checksum", checksum);
    auto* n = app.add_flag("--no-checksum", no_checksum);
    std::vector<std::string> args;
    if (*given) args.push_back(given);
    app.parse(args);
    TomlFlags toml;
    toml.Bind("checksum", &value, {c, n});
    ASSERT_TRUE(toml.ApplyText("checksum = true\n", "a.toml").ok());
    EXPECT_EQ(value, !*given) << given;
  }
}

TEST(TomlFlags, AStringTakesAnIntegerAsItsDecimalText) {
  Tool t({});
  ASSERT_TRUE(t.toml.ApplyText("group = 65536\n", "a.toml").ok());
  EXPECT_EQ(t.o.group, "65536");
  EXPECT_EQ(t.toml.ApplyText("group = 1.5\n", "a.toml").message(), "a.toml:1: group: expected a string or an integer");
  EXPECT_EQ(t.toml.ApplyText("group = true\n", "a.toml").code(), Code::kUsage);
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
