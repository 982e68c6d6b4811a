#include "util/json_value.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "util/json.h"

namespace cm {
namespace {

TEST(JsonValue, ReadsObjectsArraysAndScalars) {
  auto v = ParseJson(R"( {"a": 1, "b": "x\n\u00e9", "c": [true, false, null], "d": {"e": -2.5},
                         "big": 18446744073709551615, "neg": -9007199254740993} )");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->Int("a"), 1);
  EXPECT_EQ(v->Str("b"), "x\n\xc3\xa9");
  ASSERT_EQ((*v)["c"].items().size(), 3u);
  EXPECT_TRUE((*v)["c"].items()[0].AsBool());
  EXPECT_TRUE((*v)["c"].items()[2].is_null());
  EXPECT_DOUBLE_EQ((*v)["d"].Num("e"), -2.5);
  EXPECT_EQ(v->Uint("big"), UINT64_MAX);
  EXPECT_EQ(v->Int("neg"), -9007199254740993LL);
  EXPECT_EQ(v->Str("missing", "dflt"), "dflt");
  EXPECT_EQ(v->Int("b", 7), 7);  // mistyped: fallback
  EXPECT_TRUE((*v)["nope"]["deeper"].is_null());
}

TEST(JsonValue, SurrogatePairsDecodeToOneCodePoint) {
  auto v = ParseJson(R"("\ud83d\ude00")");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->AsString(), "\xf0\x9f\x98\x80");
}

TEST(JsonValue, MalformedInputIsAnErrorWithTheOffset) {
  for (const char* bad : {"", "{", "{\"a\" 1}", "[1,]", "\"abc", "tru", "{\"a\":1} x", "01x", "\"\\q\"", "-",
                          "[\"\x01\"]", "nan", "1e999"}) {
    auto v = ParseJson(bad);
    EXPECT_FALSE(v.ok()) << bad;
    if (!v.ok()) {
      EXPECT_NE(v.status().message().find("offset"), std::string::npos);
    }
  }
}

TEST(JsonValue, DeepNestingIsRefusedNotOverflowed) {
  std::string deep(100000, '[');
  EXPECT_FALSE(ParseJson(deep).ok());
}

RC_GTEST_PROP(JsonValue, WhatJsonObjectWritesReadsBack, (std::string s, int64_t i, bool b)) {
  std::string doc = JsonObject().Str("s", s).Int("i", i).Bool("b", b).Build();
  auto v = ParseJson(doc);
  RC_ASSERT(v.ok());
  RC_ASSERT(v->Int("i") == i);
  RC_ASSERT(v->Bool("b") == b);
  // JsonObject escapes invalid UTF-8 bytes as \u00XX, so only valid text
  // round-trips byte for byte; ASCII always does.
  bool ascii = true;
  for (unsigned char c : s) ascii &= c < 0x80;
  if (ascii) RC_ASSERT(v->Str("s") == s);
}

// A document is all or nothing: no strict prefix of a valid object parses
// (a truncated body is never taken for a shorter one), and a valid document
// followed by anything but whitespace is refused.
RC_GTEST_PROP(JsonValue, TruncatedOrTrailedDocumentsAreRefused, (std::string s, int64_t i, std::string tail)) {
  std::string ascii;
  for (char c : s) ascii += static_cast<char>(c & 0x7f);
  std::string doc = JsonObject().Str("s", ascii).Int("i", i).Raw("a", "[1,{\"x\":null}]").Build();
  RC_ASSERT(ParseJson(doc).ok());
  size_t cut = *rc::gen::inRange<size_t>(0, doc.size());
  RC_ASSERT(!ParseJson(std::string_view(doc).substr(0, cut)).ok());
  bool blank = true;
  for (char c : tail) blank &= c == ' ' || c == '\t' || c == '\n' || c == '\r';
  RC_ASSERT(ParseJson(doc + tail).ok() == blank);
}

}  // namespace
}  // namespace cm
