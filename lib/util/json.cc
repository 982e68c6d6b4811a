#include "util/json.h"

#include <cstdio>

namespace cm {
size_t Utf8Len(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

std::string JsonEscape(std::string_view s) {
  std::string o = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    char buf[8];
    switch (c) {
      case '"': o += "\\\""; continue;
      case '\\': o += "\\\\"; continue;
      case '\n': o += "\\n"; continue;
      case '\r': o += "\\r"; continue;
      case '\t': o += "\\t"; continue;
      default: break;
    }
    if (c < 0x20) {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else if (c < 0x80) {
      o += static_cast<char>(c);
    } else if (size_t n = Utf8Len(s, i)) {
      o.append(s.substr(i, n));
      i += n - 1;
    } else {
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    }
  }
  return o + "\"";
}

void JsonObject::Key(std::string_view k) {
  if (!body_.empty()) body_ += ",";
  body_ += JsonEscape(k);
  body_ += ":";
}
JsonObject& JsonObject::Str(std::string_view k, std::string_view v) {
  Key(k);
  body_ += JsonEscape(v);
  return *this;
}
JsonObject& JsonObject::Int(std::string_view k, int64_t v) {
  Key(k);
  body_ += std::to_string(v);
  return *this;
}
JsonObject& JsonObject::Uint(std::string_view k, uint64_t v) {
  Key(k);
  body_ += std::to_string(v);
  return *this;
}
JsonObject& JsonObject::Bool(std::string_view k, bool v) {
  Key(k);
  body_ += v ? "true" : "false";
  return *this;
}
JsonObject& JsonObject::Double(std::string_view k, double v) {
  Key(k);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  body_ += buf;
  return *this;
}
JsonObject& JsonObject::Raw(std::string_view k, std::string_view json) {
  Key(k);
  body_ += json;
  return *this;
}
JsonObject& JsonObject::Null(std::string_view k) {
  Key(k);
  body_ += "null";
  return *this;
}
JsonArray& JsonArray::Raw(std::string_view json) {
  if (!body_.empty()) body_ += ",";
  body_ += json;
  return *this;
}

}  // namespace cm
