#include "apply/state.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "apply/journal.h"
#include "apply/kv_text.h"
#include "apply/layout.h"
#include "support/test_util.h"

namespace cm::apply {
namespace {

using test::TempDir;

State Sample() {
  State s;
  s.last_stage_serial = 43;
  s.last_switch_serial = 41;
  s.noop_job = "job9";
  s.current = "s000000000042-job7";
  s.previous = "s000000000040-job6";
  s.staged_job = "job 8 with spaces";
  s.staged_dir = "job_8_with_spaces.p2";
  s.staged_type = "publish";
  s.staged_parts = 2;
  s.staged_complete = true;
  s.staged_serial = 43;
  s.applied.push_back({42, "abcd", "job7"});
  s.applied.push_back({43, "ef01", "job 8 with spaces"});
  return s;
}

TEST(StateTest, RoundTripsThroughText) {
  State s = Sample();
  auto back = DecodeState(EncodeState(s));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, s);
}

TEST(StateTest, RoundTripsThroughFile) {
  TempDir d;
  ASSERT_TRUE(SaveState(d / "state", Sample()).ok());
  auto back = LoadState(d / "state");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, Sample());
}

TEST(StateTest, MissingFileIsAFreshState) {
  TempDir d;
  auto s = LoadState(d / "none");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, State{});
}

TEST(StateTest, GarbageIsCorrupt) {
  EXPECT_EQ(DecodeState("").status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeState("something 1\n").status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeState("cm-apply-state 2\n").status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeState("cm-apply-state 1\nlast_serial x\n").status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeState("cm-apply-state 1\nlast_serial 1").status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeState("cm-apply-state 1\nstaged_job j\nstaged_dir ../x\n").status().code(), Code::kCorrupt);
}

TEST(StateTest, RecordIsIdempotentAndBounded) {
  State s;
  s.Record({5, "a", "j"}, SerialSpace::kStage);
  s.Record({5, "a", "j"}, SerialSpace::kStage);
  EXPECT_EQ(s.applied.size(), 1u);
  EXPECT_EQ(s.last_stage_serial, 5u);
  for (uint64_t i = 6; i < 6 + State::kMaxApplied; ++i) s.Record({i, "x", "j"}, SerialSpace::kStage);
  EXPECT_EQ(s.applied.size(), State::kMaxApplied);
  EXPECT_EQ(s.Find(5), nullptr);
  ASSERT_NE(s.Find(6), nullptr);
}

TEST(StateTest, EachSpaceRaisesOnlyItsOwnLastSerial) {
  State s;
  s.Record({5, "c", "j1"}, SerialSpace::kSwitch);
  s.Record({4, "a", "j2"}, SerialSpace::kStage);
  EXPECT_EQ(s.LastSerial(SerialSpace::kSwitch), 5u);
  EXPECT_EQ(s.LastSerial(SerialSpace::kStage), 4u);
  EXPECT_EQ(s.LastSerialAny(), 5u);
  // An older cm-apply reads last_serial: the larger of the two.
  EXPECT_NE(EncodeState(s).find("\nlast_serial 5\n"), std::string::npos);
}

TEST(StateTest, AnOldStatesLastSerialBecomesBoth) {
  auto s = DecodeState("cm-apply-state 1\nlast_serial 17\ncurrent s000000000017-j\n");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->last_stage_serial, 17u);
  EXPECT_EQ(s->last_switch_serial, 17u);
  // Once written with the spaces, last_serial is only for older readers.
  auto t = DecodeState("cm-apply-state 1\nlast_stage_serial 3\nlast_switch_serial 9\nlast_serial 9\n");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->last_stage_serial, 3u);
  EXPECT_EQ(t->last_switch_serial, 9u);
}

RC_GTEST_PROP(StateTest, AnyStateRoundTrips, ()) {
  State s;
  s.last_stage_serial = *rc::gen::arbitrary<uint64_t>();
  s.last_switch_serial = *rc::gen::arbitrary<uint64_t>();
  auto word = rc::gen::container<std::string>(rc::gen::inRange('!', '~'));
  s.current = *word;
  s.previous = *word;
  if (*rc::gen::arbitrary<bool>()) {
    s.staged_job = *rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::inRange(' ', '~')));
    s.staged_dir = StageName(s.staged_job, 1);
    s.staged_type = "publish";
    s.staged_parts = *rc::gen::arbitrary<uint32_t>();
    s.staged_complete = *rc::gen::arbitrary<bool>();
    s.staged_serial = *rc::gen::arbitrary<uint64_t>();
  }
  int n = *rc::gen::inRange(0, 5);
  for (int i = 0; i < n; ++i)
    s.applied.push_back({*rc::gen::arbitrary<uint64_t>(), *rc::gen::nonEmpty(word),
                         *rc::gen::nonEmpty(rc::gen::container<std::string>(rc::gen::inRange(' ', '~')))});
  auto back = DecodeState(EncodeState(s));
  RC_ASSERT(back.ok());
  RC_ASSERT(*back == s);
}

RC_GTEST_PROP(StateTest, DecoderIsTotal, (const std::string& text)) {
  auto r = DecodeState(text);  // must not crash; ok or corrupt
  RC_ASSERT(r.ok() || r.status().code() == Code::kCorrupt);
}

TEST(JournalTest, RoundTrips) {
  Journal j{"commit", "s000000000001-a", "s000000000002-b", "b.p1", AppliedId{2, "ff", "b"}};
  auto back = DecodeJournal(EncodeJournal(j));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(*back, j);
  Journal r{"rollback", "", "s000000000001-a", "", std::nullopt};
  back = DecodeJournal(EncodeJournal(r));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, r);
}

TEST(JournalTest, MalformedIsCorrupt) {
  EXPECT_EQ(DecodeJournal("cm-apply-journal 1\nop commit\n").status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeJournal("cm-apply-journal 1\nop x\nto a\n").status().code(), Code::kCorrupt);
  EXPECT_EQ(DecodeJournal("cm-apply-journal 1\nop commit\nto ../a\n").status().code(), Code::kCorrupt);
}

TEST(LayoutTest, NamesAreSafeAndOrdered) {
  EXPECT_EQ(SafeName("job-1.x_y"), "job-1.x_y");
  EXPECT_EQ(SafeName("a/b c"), "a_b_c");
  EXPECT_EQ(SafeName(".."), "_..");
  EXPECT_EQ(ReleaseId(42, "j"), "s000000000042-j");
  EXPECT_EQ(ReleaseJob(ReleaseId(42, "a/b")), "a_b");
  // Serials taken from the clock are 16 digits wide.
  EXPECT_EQ(ReleaseJob(ReleaseId(1795320043359879ull, "j2")), "j2");
  EXPECT_EQ(ReleaseSerial(ReleaseId(1795320043359879ull, "j-2")), 1795320043359879ull);
  EXPECT_EQ(ReleaseSerial(ReleaseId(42, "x")), 42u);
  EXPECT_EQ(ReleaseJob("s12x-j"), "");
  EXPECT_EQ(ReleaseSerial("not-a-release"), 0u);
  EXPECT_LT(ReleaseId(9, "z"), ReleaseId(10, "a"));
  EXPECT_EQ(StageName("j", 3), "j.p3");
}

}  // namespace
}  // namespace cm::apply
