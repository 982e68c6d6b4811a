#include "push/job_messages.h"

#include <gtest/gtest.h>

#include <random>

int CmFuzzJobBodies(const uint8_t* data, size_t size);

namespace cm::push {
namespace {

JobObject Object2() {
  return JobObject{"ci-1", "http://198.18.0.10:7700",
                   {{"s1a", "site1", "http://198.18.1.10:7710", 3750000}, {"s2a", "site2", "http://198.18.2.10:7710", 0}}};
}

TEST(JobMessages, RoundTrips) {
  JobObject o = Object2();
  auto po = ParseJobObject(Encode(o));
  ASSERT_TRUE(po.ok()) << po.status().ToString();
  EXPECT_EQ(*po, o);
  EXPECT_EQ(PeersOf(o)[0].site, "site1");

  JobOfferBody offer{"ci-1", JobOfferMsg{kBaseNode, {1, 0}, 1234567, 65536, true, false}, "http://b"};
  auto pf = ParseJobOffer(Encode(offer));
  ASSERT_TRUE(pf.ok());
  EXPECT_EQ(*pf, offer);
  EXPECT_EQ(*ParseOfferAnswer(Encode(OfferAnswer::kSwitched)), OfferAnswer::kSwitched);

  JobProgressBody pr;
  pr.job = "ci-1";
  pr.progress = JobProgressMsg{1, 1 << 20, false, 0, 1e6, 5e5, {0}, 3};
  pr.entries = {{1, EntryState::kDone, ""}, {2, EntryState::kFailed, "cm-apply: no space"}};
  auto pp = ParseJobProgress(Encode(pr));
  ASSERT_TRUE(pp.ok()) << pp.status().ToString();
  EXPECT_EQ(*pp, pr);

  JobHelpBody h{"ci-1", JobHelpAsk{1, 5, true, 2e6, false}};
  EXPECT_EQ(*ParseJobHelp(Encode(h)), h);
  JobHelpReply hr{0, false, true, 3e6};
  EXPECT_EQ(*ParseJobHelpReply(Encode(hr)), hr);
  JobSourceFailedBody sf{"ci-1", JobSourceFailedMsg{1, 0, 99}};
  EXPECT_EQ(*ParseJobSourceFailed(Encode(sf)), sf);
  EXPECT_EQ(*ParseSourceReply(EncodeSourceReply(kBaseNode)), kBaseNode);
  JobUnreachableBody u{"ci-1", JobUnreachableMsg{0, 1}};
  EXPECT_EQ(*ParseJobUnreachable(Encode(u)), u);
  JobEntriesBody en{"ci-1", 2, {{1, EntryState::kDone, ""}, {2, EntryState::kInProgress, ""}}};
  auto pe = ParseJobEntries(Encode(en));
  ASSERT_TRUE(pe.ok()) << pe.status().ToString();
  EXPECT_EQ(*pe, en);
}

TEST(JobMessages, BadBodiesAreRefused) {
  EXPECT_EQ(ParseJobObject("[]").status().code(), Code::kCorrupt);
  EXPECT_EQ(ParseJobObject(R"({"version":0,"job":"j","base_url":"http://b","servers":[]})").status().code(),
            Code::kCorrupt);  // no servers
  EXPECT_EQ(ParseJobObject(R"({"version":9,"job":"j","base_url":"http://b","servers":[{"name":"a","url":"u"}]})")
                .status()
                .code(),
            Code::kCorrupt);  // another version
  EXPECT_EQ(ParseJobOffer(R"({"job":"j","from":-2})").status().code(), Code::kCorrupt);  // from nobody
  EXPECT_EQ(ParseJobOffer(R"({"job":"j","from":0,"share":[1,-1]})").status().code(), Code::kCorrupt);
  EXPECT_EQ(ParseJobOffer(R"({"job":"j","from":0,"share":[1.5]})").status().code(), Code::kCorrupt);
  EXPECT_EQ(ParseJobProgress(R"({"job":"j","node":0,"entries":[{"entry":0,"state":"done"}]})").status().code(),
            Code::kCorrupt);
  EXPECT_EQ(ParseJobProgress(R"({"job":"j","node":0,"entries":[{"entry":1,"state":"bogus"}]})").status().code(),
            Code::kCorrupt);
  EXPECT_EQ(ParseJobHelp(R"({"job":"","node":0})").status().code(), Code::kCorrupt);
  EXPECT_EQ(ParseJobEntries(R"({"job":"j","node":-1,"entries":[]})").status().code(), Code::kCorrupt);
  EXPECT_EQ(ParseJobEntries(R"({"job":"j","node":0,"entries":[{"entry":2,"state":"later"}]})").status().code(),
            Code::kCorrupt);
  EXPECT_EQ(ParseOfferAnswer(R"({"answer":"maybe"})").status().code(), Code::kCorrupt);
  // Rates are whole bytes per second, never negative.
  auto f = ParseJobOffer(R"({"job":"j","from":0,"rate_bps":-5})");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->offer.rate_bps, 0);
}

TEST(JobMessagesFuzz, RandomMutationsKeepTheParsersTotal) {
  JobProgressBody pr;
  pr.job = "ci-1";
  pr.progress = JobProgressMsg{1, 1 << 20, false, 0, 1e6, 5e5, {0}, 3};
  pr.entries = {{1, EntryState::kDone, ""}};
  const std::vector<std::string> bases = {
      Encode(Object2()),
      Encode(JobOfferBody{"ci-1", JobOfferMsg{kBaseNode, {1, 0}, 1234567, 65536, true, false}, "http://b"}),
      Encode(OfferAnswer::kAccepted),
      Encode(pr),
      Encode(JobHelpBody{"ci-1", JobHelpAsk{1, 5, true, 2e6, false}}),
      Encode(JobHelpReply{0, false, true, 3e6}),
      Encode(JobSourceFailedBody{"ci-1", JobSourceFailedMsg{1, 0, 99}}),
      EncodeSourceReply(3),
      Encode(JobUnreachableBody{"ci-1", JobUnreachableMsg{0, 1}}),
      Encode(JobEntriesBody{"ci-1", 1, {{1, EntryState::kFailed, "no root"}}})};
  std::mt19937 rng(17);
  for (int iter = 0; iter < 18000; ++iter) {
    const size_t which = iter % bases.size();
    std::string m = bases[which];
    int edits = static_cast<int>(rng() % 4);
    for (int k = 0; k < edits && !m.empty(); ++k) {
      size_t at = rng() % m.size();
      switch (rng() % 4) {
        case 0: m[at] = static_cast<char>(rng()); break;
        case 1: m.resize(at); break;
        case 2: m.insert(at, std::string(1 + rng() % 4, "{}[]\",:0a-.e"[rng() % 12])); break;
        case 3: m.erase(at, 1 + rng() % 8); break;
      }
    }
    std::string in(1, static_cast<char>(which));
    in += m;
    CmFuzzJobBodies(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  }
  SUCCEED();
}

}  // namespace
}  // namespace cm::push
