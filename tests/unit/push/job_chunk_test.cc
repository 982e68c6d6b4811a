// The signed chunk records of a job item (lib/push/job_chunk.h): round trip,
// every kind of tampering refused with its error, resumption from a saved
// cursor, and the header parser's bounds.
#include "push/job_chunk.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>
#include <sodium.h>

#include <string>
#include <vector>

#include "job_chunk_fixture.h"

namespace cm::push {
namespace {

using testing::SeededKey;
using testing::SignRecords;

const pack::SigningKey& Base() {
  static const pack::SigningKey k = SeededKey(1);
  return k;
}

std::string Payload(size_t n, char salt) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(salt + i * 7 + i / 251);
  return s;
}

ChunkVerifier Verifier(const std::string& job = "job-1", uint32_t item = 7) {
  return ChunkVerifier(Base().pub, job, item);
}

// Checks records in order; returns the first refusal's code (kOk if none).
Code CheckAll(ChunkVerifier* v, const std::vector<std::string>& records) {
  for (const auto& r : records) {
    Status s = v->Check(r);
    if (!s.ok()) return s.code();
  }
  return Code::kOk;
}

std::string Reassemble(const std::vector<std::string>& records) {
  std::string out;
  for (const auto& r : records) out += r.substr(kChunkHeaderSize);
  return out;
}

TEST(JobChunk, SignedItemVerifiesAndReassembles) {
  const std::vector<std::string> payloads = {Payload(1, 'a'), Payload(300, 'b'), Payload(kMaxChunkPayload, 'c'),
                                             Payload(5, 'd')};
  auto recs = SignRecords(Base(), "job-1", 7, payloads, "end!");
  ASSERT_EQ(recs.size(), 5u);
  ChunkVerifier v = Verifier();
  ASSERT_EQ(CheckAll(&v, recs), Code::kOk);
  std::string want;
  for (const auto& p : payloads) want += p;
  want += "end!";
  EXPECT_EQ(Reassemble(recs), want);
  EXPECT_EQ(v.cursor().index, 5u);
  EXPECT_EQ(v.cursor().offset, want.size());
  EXPECT_TRUE(v.cursor().ended);
  auto end = ParseChunkHeader(recs.back());
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end->end());
  EXPECT_EQ(end->total_size, want.size());
}

TEST(JobChunk, HeaderFieldsAreWhereTheFormatSaysAndReencodeExactly) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(10, 'x'), Payload(20, 'y')});
  auto h = ParseChunkHeader(recs[1]);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(recs[1].substr(0, 4), "CMJ1");
  EXPECT_EQ(h->index, 1u);
  EXPECT_EQ(h->offset, 10u);
  EXPECT_EQ(h->payload_length, 20u);
  EXPECT_EQ(h->item, 7u);
  EXPECT_EQ(h->job, "job-1");
  EXPECT_EQ(h->key_id, Base().pub.Id());
  EXPECT_EQ(h->total_size, 0u);
  EXPECT_EQ(static_cast<uint8_t>(recs[1][kOffIndex]), 1);
  EXPECT_EQ(static_cast<uint8_t>(recs[1][kOffOffset]), 10);
  EXPECT_EQ(static_cast<uint8_t>(recs[1][kOffLength]), 20);
  EXPECT_EQ(static_cast<uint8_t>(recs[1][kOffItem]), 7);
  EXPECT_EQ(recs[1].substr(kOffJob, 6), std::string("job-1\0", 6));
  EXPECT_EQ(EncodeChunkHeader(*h), recs[1].substr(0, kChunkHeaderSize));
  const std::string payload = recs[1].substr(kChunkHeaderSize);
  EXPECT_EQ(h->payload_hash, HashBytes(payload.data(), payload.size()));
  auto h0 = ParseChunkHeader(recs[0]);
  ASSERT_TRUE(h0.ok());
  EXPECT_EQ(h->chain, ChainOf(h0->chain, *h));
  EXPECT_EQ(h0->chain, ChainOf(GenesisChain("job-1", 7), *h0));
}

TEST(JobChunk, EmptyItemIsOneEndRecord) {
  auto recs = SignRecords(Base(), "job-1", 7, {});
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].size(), kChunkHeaderSize);
  ChunkVerifier v = Verifier();
  EXPECT_EQ(CheckAll(&v, recs), Code::kOk);
  EXPECT_TRUE(v.cursor().ended);
  EXPECT_EQ(v.cursor().offset, 0u);
}

TEST(JobChunk, ManyOneByteRecordsAreFine) {
  std::vector<std::string> payloads;
  for (int i = 0; i < 500; ++i) payloads.push_back(std::string(1, static_cast<char>(i)));
  auto recs = SignRecords(Base(), "job-1", 7, payloads);
  ChunkVerifier v = Verifier();
  EXPECT_EQ(CheckAll(&v, recs), Code::kOk);
  EXPECT_EQ(v.cursor().offset, 500u);
}

TEST(JobChunk, EveryPayloadByteChangedIsRefusedAsCorrupt) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(64, 'p')});
  for (size_t i = kChunkHeaderSize; i < recs[0].size(); ++i) {
    std::string bad = recs[0];
    bad[i] ^= 0x20;
    ChunkVerifier v = Verifier();
    Status s = v.Check(bad);
    EXPECT_EQ(s.code(), Code::kCorrupt) << "byte " << i << ": " << s.ToString();
    EXPECT_EQ(v.cursor(), StartCursor("job-1", 7));
  }
}

TEST(JobChunk, EveryHeaderBitChangedIsRefused) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(64, 'p'), Payload(9, 'q')}, "zz");
  for (size_t r = 0; r < recs.size(); ++r) {
    ChunkVerifier v = Verifier();
    for (size_t k = 0; k < r; ++k) ASSERT_TRUE(v.Check(recs[k]).ok());
    for (size_t i = 0; i < kChunkHeaderSize; ++i) {
      for (int bit : {0, 7}) {
        std::string bad = recs[r];
        bad[i] ^= static_cast<char>(1 << bit);
        Status s = v.Check(bad);
        ASSERT_FALSE(s.ok()) << "record " << r << " byte " << i << " bit " << bit;
        // A header that still parses is unsigned now: kAuth. Anything else
        // is malformed: kCorrupt.
        EXPECT_TRUE(s.code() == Code::kCorrupt || s.code() == Code::kAuth) << s.ToString();
        if (i >= kOffSignature || (i >= kOffKeyId && i < kOffKeyId + 8)) {
          EXPECT_EQ(s.code(), Code::kAuth) << i;
        }
      }
    }
    EXPECT_TRUE(v.Check(recs[r]).ok()) << "the genuine record after the refusals, record " << r;
  }
}

TEST(JobChunk, AnotherKeysRecordsAreRefused) {
  const pack::SigningKey other = SeededKey(99);
  auto recs = SignRecords(other, "job-1", 7, {Payload(10, 'o')});
  ChunkVerifier v = Verifier();
  Status s = v.Check(recs[0]);
  EXPECT_EQ(s.code(), Code::kAuth);
  EXPECT_NE(s.message().find("another key"), std::string::npos) << s.message();
  // Claiming the base's key id does not help: the signature does not verify.
  pack::SigningKey forger = other;
  forger.pub = Base().pub;
  auto forged = SignRecords(forger, "job-1", 7, {Payload(10, 'o')});
  s = v.Check(forged[0]);
  EXPECT_EQ(s.code(), Code::kAuth);
  EXPECT_NE(s.message().find("bad signature"), std::string::npos) << s.message();
}

TEST(JobChunk, ReorderedSkippedAndReplayedRecordsAreRefusedAsOrder) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(10, 'a'), Payload(10, 'b'), Payload(10, 'c')});
  ChunkVerifier v = Verifier();
  EXPECT_EQ(v.Check(recs[1]).code(), Code::kOrder);  // record 1 first
  ASSERT_TRUE(v.Check(recs[0]).ok());
  EXPECT_EQ(v.Check(recs[0]).code(), Code::kOrder);  // replayed
  EXPECT_EQ(v.Check(recs[2]).code(), Code::kOrder);  // skips record 1
  EXPECT_EQ(v.Check(recs[3]).code(), Code::kOrder);  // the end, early
  ASSERT_TRUE(v.Check(recs[1]).ok());
  ASSERT_TRUE(v.Check(recs[2]).ok());
  ASSERT_TRUE(v.Check(recs[3]).ok());
}

TEST(JobChunk, RecordsOfAnotherJobOrItemAreRefusedAsOrder) {
  auto other_job = SignRecords(Base(), "job-2", 7, {Payload(10, 'a')});
  auto other_item = SignRecords(Base(), "job-1", 8, {Payload(10, 'a')});
  ChunkVerifier v = Verifier();
  EXPECT_EQ(v.Check(other_job[0]).code(), Code::kOrder);
  Status s = v.Check(other_item[0]);
  EXPECT_EQ(s.code(), Code::kOrder);
  EXPECT_NE(s.message().find("item 8, expected job job-1 item 7"), std::string::npos) << s.message();
  EXPECT_EQ(v.Check(other_job.back()).code(), Code::kOrder);
  EXPECT_EQ(v.cursor(), StartCursor("job-1", 7));
}

TEST(JobChunk, ARecordOfAnotherHistoryOfTheItemIsRefusedByTheChain) {
  // Two histories of one item with equal sizes: index and offset match, only
  // the chain tells the splice apart.
  auto a = SignRecords(Base(), "job-1", 7, {Payload(10, 'a'), Payload(10, 'b')});
  auto b = SignRecords(Base(), "job-1", 7, {Payload(10, 'x'), Payload(10, 'b')});
  ChunkVerifier v = Verifier();
  ASSERT_TRUE(v.Check(a[0]).ok());
  Status s = v.Check(b[1]);
  EXPECT_EQ(s.code(), Code::kOrder);
  EXPECT_NE(s.message().find("chain"), std::string::npos) << s.message();
  EXPECT_EQ(v.Check(b[2]).code(), Code::kOrder);  // nor b's end (a's item is 20 bytes too)
  EXPECT_TRUE(v.Check(a[1]).ok());
}

TEST(JobChunk, ForgedEndRecordsAreRefused) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(10, 'a'), Payload(10, 'b')});
  // END set on record 1 (total fixed up so the header parses): unsigned.
  std::string early = recs[1];
  early[kOffFlags] = static_cast<char>(kFlagEnd);
  early[kOffTotal] = 20;
  ASSERT_TRUE(ParseChunkHeader(early).ok());
  ChunkVerifier v = Verifier();
  ASSERT_TRUE(v.Check(recs[0]).ok());
  EXPECT_EQ(v.Check(early).code(), Code::kAuth);
  // The end's total changed: refused before the signature is looked at.
  std::string longer = recs[2];
  longer[kOffTotal] = 21;
  EXPECT_EQ(v.Check(longer).code(), Code::kCorrupt);
  // An end that a stranger signed at the right place.
  auto strangers = SignRecords(SeededKey(50), "job-1", 7, {Payload(10, 'a')});
  EXPECT_EQ(v.Check(strangers[1]).code(), Code::kAuth);
  // The base's own end of a shorter history: the chain refuses it.
  auto shorter = SignRecords(Base(), "job-1", 7, {Payload(10, 'a'), Payload(10, 'x')});
  ASSERT_TRUE(v.Check(recs[1]).ok());
  EXPECT_EQ(v.Check(shorter[2]).code(), Code::kOrder);
  ASSERT_TRUE(v.Check(recs[2]).ok());
  EXPECT_EQ(v.Check(recs[2]).code(), Code::kOrder);  // nothing after the end
  // Not even a record the base signed at the very place after the end (a
  // signer told to resume as if the item had not ended).
  ChunkCursor after = v.cursor();
  after.ended = false;
  auto more = ChunkSigner::Create(Base(), "job-1", 7, after);
  ASSERT_TRUE(more.ok());
  auto extra = more->Append("more");
  ASSERT_TRUE(extra.ok());
  ChunkVerifier fresh(Base().pub, "job-1", 7, after);
  ASSERT_TRUE(fresh.Check(*extra).ok());  // the record is well placed and signed...
  Status s = v.Check(*extra);             // ...but it follows an END
  EXPECT_EQ(s.code(), Code::kOrder);
  EXPECT_NE(s.message().find("after the end"), std::string::npos) << s.message();
}

TEST(JobChunk, TruncatedOrTrailedRecordsAreRefusedAsCorrupt) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(40, 'a')});
  for (size_t n = 0; n < recs[0].size(); ++n) {
    ChunkVerifier v = Verifier();
    EXPECT_EQ(v.Check(std::string_view(recs[0]).substr(0, n)).code(), Code::kCorrupt) << n;
  }
  ChunkVerifier v = Verifier();
  EXPECT_EQ(v.Check(recs[0] + "x").code(), Code::kCorrupt);
  EXPECT_TRUE(v.Check(recs[0]).ok());
}

TEST(JobChunk, OversizedLengthIsRefusedFromTheHeaderAlone) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(40, 'a')});
  std::string h = recs[0].substr(0, kChunkHeaderSize);
  const uint32_t len = kMaxChunkPayload + 1;
  for (int i = 0; i < 4; ++i) h[kOffLength + i] = static_cast<char>(len >> (8 * i));
  EXPECT_EQ(ParseChunkHeader(h).status().code(), Code::kCorrupt);
  // The splitter refuses instead of asking for the declared bytes.
  EXPECT_EQ(NextChunkRecordSize(h).status().code(), Code::kCorrupt);
  // An empty payload is only for the end record.
  for (int i = 0; i < 4; ++i) h[kOffLength + i] = 0;
  EXPECT_EQ(ParseChunkHeader(h).status().code(), Code::kCorrupt);
}

TEST(JobChunk, HeaderParserRefusesMalformedFields) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(4, 'a')});
  const std::string h = recs[0].substr(0, kChunkHeaderSize);
  ASSERT_TRUE(ParseChunkHeader(h).ok());
  auto with = [&](size_t at, char c) {
    std::string b = h;
    b[at] = c;
    return ParseChunkHeader(b).status().code();
  };
  EXPECT_EQ(with(0, 'X'), Code::kCorrupt);                 // magic
  EXPECT_EQ(with(4, 2), Code::kCorrupt);                   // version
  EXPECT_EQ(with(6, 1), Code::kCorrupt);                   // header size 257
  EXPECT_EQ(with(kOffFlags, 2), Code::kCorrupt);           // unknown flag
  EXPECT_EQ(with(36, 1), Code::kCorrupt);                  // reserved
  EXPECT_EQ(with(60, 1), Code::kCorrupt);                  // reserved
  EXPECT_EQ(with(kOffTotal, 1), Code::kCorrupt);           // total on a non-end record
  EXPECT_EQ(with(kOffJob, 0), Code::kCorrupt);             // empty job id
  EXPECT_EQ(with(kOffJob + 2, '/'), Code::kCorrupt);       // a character outside the set
  EXPECT_EQ(with(kOffJob + 10, 'x'), Code::kCorrupt);      // bytes after the NUL
  std::string far = h;  // offset + length past 2^64
  for (int i = 0; i < 8; ++i) far[kOffOffset + i] = static_cast<char>(0xff);
  EXPECT_EQ(ParseChunkHeader(far).status().code(), Code::kCorrupt);
}

TEST(JobChunk, VerificationResumesFromASavedCursor) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(10, 'a'), Payload(20, 'b'), Payload(30, 'c')}, "e");
  ChunkVerifier first = Verifier();
  ASSERT_TRUE(first.Check(recs[0]).ok());
  ASSERT_TRUE(first.Check(recs[1]).ok());
  const ChunkCursor saved = first.cursor();
  ChunkVerifier resumed(Base().pub, "job-1", 7, saved);
  EXPECT_EQ(resumed.Check(recs[1]).code(), Code::kOrder);
  EXPECT_TRUE(resumed.Check(recs[2]).ok());
  EXPECT_TRUE(resumed.Check(recs[3]).ok());
  // A cursor with another chain (another history) refuses the rest.
  ChunkCursor wrong = saved;
  wrong.chain[0] ^= 1;
  ChunkVerifier lost(Base().pub, "job-1", 7, wrong);
  EXPECT_EQ(lost.Check(recs[2]).code(), Code::kOrder);
}

TEST(JobChunk, TheLastRecordAloneGivesTheCursorToResumeFrom) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(10, 'a'), Payload(20, 'b')}, "e");
  ChunkVerifier v = Verifier();
  for (const auto& r : recs) {
    ASSERT_TRUE(v.Check(r).ok());
    auto h = ParseChunkHeader(r);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(CursorAfter(*h), v.cursor());
  }
}

TEST(JobChunk, SigningResumesFromASavedCursor) {
  auto s = ChunkSigner::Create(Base(), "job-1", 7);
  ASSERT_TRUE(s.ok());
  std::vector<std::string> recs = {*s->Append("abc")};
  auto resumed = ChunkSigner::Create(Base(), "job-1", 7, s->cursor());
  ASSERT_TRUE(resumed.ok());
  recs.push_back(*resumed->Append("defg"));
  recs.push_back(*resumed->End());
  ChunkVerifier v = Verifier();
  EXPECT_EQ(CheckAll(&v, recs), Code::kOk);
  EXPECT_EQ(Reassemble(recs), "abcdefg");
}

TEST(JobChunk, SignerRefusesWhatTheFormatCannotCarry) {
  EXPECT_EQ(ChunkSigner::Create(Base(), "a/b", 1).status().code(), Code::kUsage);
  EXPECT_EQ(ChunkSigner::Create(Base(), "..", 1).status().code(), Code::kUsage);
  EXPECT_EQ(ChunkSigner::Create(Base(), std::string(65, 'j'), 1).status().code(), Code::kUsage);
  EXPECT_TRUE(ChunkSigner::Create(Base(), std::string(64, 'j'), 1).ok());
  auto s = ChunkSigner::Create(Base(), "job-1", 7);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->Append("").status().code(), Code::kUsage);
  EXPECT_EQ(s->Append(std::string(kMaxChunkPayload + 1, 'x')).status().code(), Code::kUsage);
  EXPECT_EQ(s->cursor(), StartCursor("job-1", 7));
  ASSERT_TRUE(s->End().ok());
  EXPECT_EQ(s->Append("x").status().code(), Code::kUsage);
  EXPECT_EQ(s->End().status().code(), Code::kUsage);
}

TEST(JobChunk, SignatureIsDomainSeparated) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(4, 'a')});
  auto h = ParseChunkHeader(recs[0]);
  ASSERT_TRUE(h.ok());
  // Not a signature over the bare header bytes...
  EXPECT_NE(crypto_sign_verify_detached(h->signature.data(), reinterpret_cast<const unsigned char*>(recs[0].data()),
                                        kOffSignature, Base().pub.bytes.data()),
            0);
  // ...but over the context string and them.
  std::string m(kSignContext);
  m += recs[0].substr(0, kOffSignature);
  EXPECT_EQ(crypto_sign_verify_detached(h->signature.data(), reinterpret_cast<const unsigned char*>(m.data()),
                                        m.size(), Base().pub.bytes.data()),
            0);
}

TEST(JobChunk, SplitterFindsEachRecordOfAStreamFedByteByByte) {
  auto recs = SignRecords(Base(), "job-1", 7, {Payload(3, 'a'), Payload(300, 'b')}, "zz");
  std::string stream;
  for (const auto& r : recs) stream += r;
  std::vector<size_t> sizes;
  size_t start = 0;
  for (size_t end = start + 1; end <= stream.size(); ++end) {
    auto n = NextChunkRecordSize(std::string_view(stream).substr(start, end - start));
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    if (*n == 0) continue;
    EXPECT_EQ(*n, end - start);
    sizes.push_back(*n);
    start = end;
  }
  ASSERT_EQ(sizes.size(), recs.size());
  for (size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(sizes[i], recs[i].size());
}

// Any cut of any content into records (1-byte records included) verifies
// and reassembles to the content; any one byte changed anywhere in the
// stream of records is refused somewhere before the item completes.
RC_GTEST_PROP(JobChunkProp, AnyCutRoundTripsAndAnyChangeIsRefused,
              (const std::string& content, const std::vector<uint8_t>& cuts, uint32_t item, size_t where)) {
  std::vector<std::string> payloads;
  size_t at = 0, c = 0;
  while (at < content.size()) {
    const size_t n = std::min<size_t>(content.size() - at, cuts.empty() ? 7 : 1 + cuts[c++ % cuts.size()] % 40);
    payloads.push_back(content.substr(at, n));
    at += n;
  }
  const std::string last = content.size() % 3 == 0 ? "" : "!";
  auto recs = SignRecords(Base(), "prop", item, payloads, last);
  ChunkVerifier v(Base().pub, "prop", item);
  RC_ASSERT(CheckAll(&v, recs) == Code::kOk);
  RC_ASSERT(Reassemble(recs) == content + last);
  RC_ASSERT(v.cursor().ended);

  std::string stream;
  for (const auto& r : recs) stream += r;
  const size_t pos = where % stream.size();
  stream[pos] ^= 1;
  ChunkVerifier w(Base().pub, "prop", item);
  std::string_view rest(stream);
  bool refused = false;
  while (!rest.empty() && !refused) {
    auto n = NextChunkRecordSize(rest);
    if (!n.ok() || *n == 0) {
      refused = true;
      break;
    }
    refused = !w.Check(rest.substr(0, *n)).ok();
    rest.remove_prefix(*n);
  }
  RC_ASSERT(refused);
  RC_ASSERT(!w.cursor().ended);
}

}  // namespace
}  // namespace cm::push
