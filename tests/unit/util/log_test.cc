#include "util/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/test_util.h"

namespace cm::log {
namespace {

TEST(LogFormat, PlainLineIsToolLevelMessage) {
  EXPECT_EQ(FormatLine(LineFormat::kPlain, "cm-apply", Level::kError, "a.cma: bad signature", 123),
            "cm-apply: error: a.cma: bad signature\n");
}

TEST(LogFormat, TimestampIsRfc3339UtcWithMillisecondsBeforeTheTool) {
  EXPECT_EQ(FormatLine(LineFormat::kTimestamped, "cm-push", Level::kWarning, "x", 1740820365123),
            "2025-03-01T09:12:45.123Z cm-push: warning: x\n");
  EXPECT_EQ(Rfc3339Utc(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(Rfc3339Utc(951782400007), "2000-02-29T00:00:00.007Z");  // a leap day
}

TEST(LogFormat, JournalLinesCarryThePriorityAndNoTimestamp) {
  EXPECT_EQ(FormatLine(LineFormat::kJournal, "cm-leader", Level::kError, "e", 5), "<3>cm-leader: error: e\n");
  EXPECT_EQ(FormatLine(LineFormat::kJournal, "t", Level::kWarning, "w", 5), "<4>t: warning: w\n");
  EXPECT_EQ(FormatLine(LineFormat::kJournal, "t", Level::kInfo, "i", 5), "<6>t: info: i\n");
  EXPECT_EQ(FormatLine(LineFormat::kJournal, "t", Level::kDebug, "d", 5), "<7>t: debug: d\n");
}

TEST(LogFormat, EveryJournalLineOfAMultiLineMessageIsPrefixed) {
  EXPECT_EQ(FormatLine(LineFormat::kJournal, "t", Level::kError, "one\ntwo", 0), "<3>t: error: one\n<3>two\n");
}

TEST(LogFormat, JournalStreamMustNameThisDeviceAndInode) {
  EXPECT_TRUE(JournalStreamIs("8:1234", 8, 1234));
  EXPECT_FALSE(JournalStreamIs("8:1234", 8, 1235));
  EXPECT_FALSE(JournalStreamIs("9:1234", 8, 1234));
  EXPECT_FALSE(JournalStreamIs(nullptr, 8, 1234));
  EXPECT_FALSE(JournalStreamIs("", 0, 0));
  EXPECT_FALSE(JournalStreamIs("8:", 8, 0));
  EXPECT_FALSE(JournalStreamIs("8:12x", 8, 12));
  EXPECT_FALSE(JournalStreamIs("8", 8, 0));
}

// Runs Init + one Error with stderr sent to a file; returns what was written.
std::string LoggedWith(const char* journal_stream_or_null, const char* stamps_or_null, bool daemon) {
  test::TempDir dir;
  const std::string path = dir / "stderr";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  EXPECT_GE(fd, 0);
  struct stat st;
  EXPECT_EQ(::fstat(fd, &st), 0);
  std::fflush(stderr);
  const int saved = ::dup(2);
  ::dup2(fd, 2);
  ::close(fd);
  const std::string here = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  if (journal_stream_or_null)
    ::setenv("JOURNAL_STREAM", std::string(journal_stream_or_null) == "HERE" ? here.c_str() : journal_stream_or_null, 1);
  else
    ::unsetenv("JOURNAL_STREAM");
  if (stamps_or_null)
    ::setenv("CM_LOG_TIMESTAMPS", stamps_or_null, 1);
  else
    ::unsetenv("CM_LOG_TIMESTAMPS");
  Init("cm-test", 1);
  if (daemon) UseTimestamps(true);
  Error("boom");
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  ::unsetenv("JOURNAL_STREAM");
  ::unsetenv("CM_LOG_TIMESTAMPS");
  Init("cm-test", 1);
  return test::ReadFile(path);
}

bool StartsWithTimestamp(const std::string& s) {
  // "YYYY-MM-DDTHH:MM:SS.mmmZ " is 25 characters.
  return s.size() > 25 && s[4] == '-' && s[10] == 'T' && s[19] == '.' && s[23] == 'Z' && s[24] == ' ';
}

TEST(LogInit, OneShotToolsWritePlainLines) { EXPECT_EQ(LoggedWith(nullptr, nullptr, false), "cm-test: error: boom\n"); }

TEST(LogInit, DaemonsStampTheirLines) {
  std::string s = LoggedWith(nullptr, nullptr, true);
  EXPECT_TRUE(StartsWithTimestamp(s)) << s;
  EXPECT_EQ(s.substr(25), "cm-test: error: boom\n");
}

TEST(LogInit, TheEnvironmentForcesTimestampsOnOrOff) {
  std::string on = LoggedWith(nullptr, "1", false);
  EXPECT_TRUE(StartsWithTimestamp(on)) << on;
  EXPECT_EQ(LoggedWith(nullptr, "0", true), "cm-test: error: boom\n");
}

TEST(LogInit, StderrThatIsTheJournalGetsPrioritiesNotTimestamps) {
  EXPECT_EQ(LoggedWith("HERE", nullptr, true), "<3>cm-test: error: boom\n");
  EXPECT_EQ(LoggedWith("HERE", "1", false), "<3>cm-test: error: boom\n");
}

TEST(LogInit, AJournalStreamInheritedByAChildWithAnotherStderrIsIgnored) {
  // The relay runs cm-apply with stderr on a pipe: JOURNAL_STREAM names the
  // relay's journal socket, not the child's stderr.
  EXPECT_EQ(LoggedWith("1:2", nullptr, false), "cm-test: error: boom\n");
}

}  // namespace
}  // namespace cm::log
