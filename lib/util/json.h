// Minimal JSON output for --json records and reports. Builds one object or
// array in a string; keys and strings are escaped (bytes >= 0x80 that are not
// valid UTF-8 are written as \u00XX of the byte, so output is always valid).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cm {

std::string JsonEscape(std::string_view s);  // with surrounding quotes

// Length of a valid UTF-8 sequence whose lead byte (>= 0x80) is s[i], or 0.
// What JsonEscape passes through raw and what ParseJson accepts in a string.
size_t Utf8Len(std::string_view s, size_t i);

class JsonObject {
 public:
  JsonObject& Str(std::string_view key, std::string_view v);
  JsonObject& Int(std::string_view key, int64_t v);
  JsonObject& Uint(std::string_view key, uint64_t v);
  JsonObject& Bool(std::string_view key, bool v);
  JsonObject& Double(std::string_view key, double v);
  JsonObject& Raw(std::string_view key, std::string_view json);  // already-encoded value
  JsonObject& Null(std::string_view key);
  std::string Build() const { return "{" + body_ + "}"; }

 private:
  void Key(std::string_view k);
  std::string body_;
};

class JsonArray {
 public:
  JsonArray& Raw(std::string_view json);
  JsonArray& Str(std::string_view v) { return Raw(JsonEscape(v)); }
  std::string Build() const { return "[" + body_ + "]"; }
  bool empty() const { return body_.empty(); }

 private:
  std::string body_;
};

}  // namespace cm
