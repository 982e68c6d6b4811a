#include "util/json_value.h"

#include <cmath>
#include <cstdlib>

#include "util/json.h"

namespace cm {
namespace {

constexpr int kMaxDepth = 64;
const JsonValue kNullValue;
}  // namespace

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  Result<JsonValue> Document() {
    JsonValue v;
    SkipSpace();
    if (!Value(&v, 0)) return Fail();
    SkipSpace();
    if (pos_ != s_.size()) {
      err_ = "trailing bytes";
      return Fail();
    }
    return v;
  }

 private:
  Status Fail() const {
    return Error(Code::kCorrupt, "json: offset " + std::to_string(pos_) + ": " + err_);
  }
  bool Expect(char c, const char* what) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    err_ = what;
    return false;
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) {
      err_ = "unknown literal";
      return false;
    }
    pos_ += word.size();
    return true;
  }

  bool Value(JsonValue* v, int depth) {
    if (depth > kMaxDepth) {
      err_ = "nested too deeply";
      return false;
    }
    if (pos_ >= s_.size()) {
      err_ = "unexpected end";
      return false;
    }
    char c = s_[pos_];
    switch (c) {
      case '{': return Object(v, depth);
      case '[': return Array(v, depth);
      case '"': v->kind_ = JsonValue::Kind::kString; return String(&v->str_);
      case 't': v->kind_ = JsonValue::Kind::kBool; v->bool_ = true; return Literal("true");
      case 'f': v->kind_ = JsonValue::Kind::kBool; v->bool_ = false; return Literal("false");
      case 'n': v->kind_ = JsonValue::Kind::kNull; return Literal("null");
      default: return Number(v);
    }
  }

  bool Object(JsonValue* v, int depth) {
    v->kind_ = JsonValue::Kind::kObject;
    ++pos_;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      std::string key;
      if (pos_ >= s_.size() || s_[pos_] != '"') {
        err_ = "expected a key";
        return false;
      }
      if (!String(&key)) return false;
      SkipSpace();
      if (!Expect(':', "expected ':'")) return false;
      SkipSpace();
      JsonValue member;
      if (!Value(&member, depth + 1)) return false;
      v->members_.insert_or_assign(std::move(key), std::move(member));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      return Expect('}', "expected ',' or '}'");
    }
  }

  bool Array(JsonValue* v, int depth) {
    v->kind_ = JsonValue::Kind::kArray;
    ++pos_;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      SkipSpace();
      JsonValue item;
      if (!Value(&item, depth + 1)) return false;
      v->items_.push_back(std::move(item));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      return Expect(']', "expected ',' or ']'");
    }
  }

  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool Hex4(uint32_t* out) {
    if (s_.size() - pos_ < 4) {
      err_ = "short \\u escape";
      return false;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = Hex(s_[pos_ + i]);
      if (h < 0) {
        err_ = "bad \\u escape";
        return false;
      }
      v = v << 4 | static_cast<uint32_t>(h);
    }
    pos_ += 4;
    *out = v;
    return true;
  }
  static void Utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | cp >> 6));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | cp >> 12));
      out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | cp >> 18));
      out->push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  bool String(std::string* out) {
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= s_.size()) {
        err_ = "unterminated string";
        return false;
      }
      char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) {
        err_ = "control character in string";
        return false;
      }
      if (static_cast<unsigned char>(c) >= 0x80) {  // raw UTF-8 only: a string has one reading
        size_t n = Utf8Len(s_, pos_ - 1);
        if (n == 0) {
          err_ = "invalid UTF-8 in string";
          return false;
        }
        out->append(s_.substr(pos_ - 1, n));
        pos_ += n - 1;
        continue;
      }
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) {
        err_ = "unterminated escape";
        return false;
      }
      char e = s_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(pos_, 2) == "\\u") {
            pos_ += 2;
            uint32_t lo;
            if (!Hex4(&lo)) return false;
            if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          Utf8(cp, out);
          break;
        }
        default: err_ = "bad escape"; return false;
      }
    }
  }

  bool Number(JsonValue* v) {
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    size_t digits = pos_;
    while (pos_ < s_.size() && ((s_[pos_] >= '0' && s_[pos_] <= '9') || s_[pos_] == '.' || s_[pos_] == 'e' ||
                                s_[pos_] == 'E' || s_[pos_] == '+' || s_[pos_] == '-')) {
      ++pos_;
    }
    if (pos_ == digits || pos_ - start > 64) {
      err_ = "expected a value";
      return false;
    }
    std::string text(s_.substr(start, pos_ - start));
    char* end = nullptr;
    double d = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(d)) {
      err_ = "bad number";
      return false;
    }
    v->kind_ = JsonValue::Kind::kNumber;
    v->num_ = d;
    v->str_ = std::move(text);  // exact integer text for 64-bit values
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string err_;
};

Result<JsonValue> ParseJson(std::string_view text) { return JsonParser(text).Document(); }

const JsonValue& JsonValue::operator[](std::string_view key) const {
  if (kind_ != Kind::kObject) return kNullValue;
  auto it = members_.find(key);
  return it == members_.end() ? kNullValue : it->second;
}
bool JsonValue::Has(std::string_view key) const {
  return kind_ == Kind::kObject && members_.find(key) != members_.end();
}
std::string JsonValue::Str(std::string_view key, std::string fallback) const {
  const JsonValue& v = (*this)[key];
  return v.kind_ == Kind::kString ? v.str_ : fallback;
}
int64_t JsonValue::Int(std::string_view key, int64_t fallback) const {
  const JsonValue& v = (*this)[key];
  if (v.kind_ != Kind::kNumber) return fallback;
  char* end = nullptr;
  long long i = std::strtoll(v.str_.c_str(), &end, 10);
  if (end == v.str_.c_str() + v.str_.size()) return i;
  if (v.num_ >= -9.2e18 && v.num_ <= 9.2e18) return static_cast<int64_t>(v.num_);
  return fallback;
}
uint64_t JsonValue::Uint(std::string_view key, uint64_t fallback) const {
  const JsonValue& v = (*this)[key];
  if (v.kind_ != Kind::kNumber || v.str_.empty() || v.str_[0] == '-') return fallback;
  char* end = nullptr;
  unsigned long long u = std::strtoull(v.str_.c_str(), &end, 10);
  if (end == v.str_.c_str() + v.str_.size()) return u;
  if (v.num_ >= 0 && v.num_ <= 1.8e19) return static_cast<uint64_t>(v.num_);
  return fallback;
}
double JsonValue::Num(std::string_view key, double fallback) const {
  const JsonValue& v = (*this)[key];
  return v.kind_ == Kind::kNumber ? v.num_ : fallback;
}
bool JsonValue::Bool(std::string_view key, bool fallback) const {
  const JsonValue& v = (*this)[key];
  return v.kind_ == Kind::kBool ? v.bool_ : fallback;
}

}  // namespace cm
