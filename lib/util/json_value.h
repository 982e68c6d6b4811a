// A small, total JSON reader for the control messages cm-push exchanges over
// HTTP (and cm-leader's segment reports). Any byte string yields a value or an
// error, never a crash: depth, string and document sizes are bounded by the
// input. Numbers are kept as double and as int64 when they are integral.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace cm {

class JsonValue {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;
  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_object() const { return kind_ == Kind::kObject; }
  bool is_array() const { return kind_ == Kind::kArray; }

  // Member access on objects; a missing member (or a non-object) is null.
  const JsonValue& operator[](std::string_view key) const;
  bool Has(std::string_view key) const;
  // Typed reads with a fallback for a missing or mistyped value.
  std::string Str(std::string_view key, std::string fallback = {}) const;
  int64_t Int(std::string_view key, int64_t fallback = 0) const;
  uint64_t Uint(std::string_view key, uint64_t fallback = 0) const;
  double Num(std::string_view key, double fallback = 0) const;
  bool Bool(std::string_view key, bool fallback = false) const;

  // This value itself.
  const std::string& AsString() const { return str_; }
  double AsNumber() const { return num_; }
  bool AsBool() const { return bool_; }
  const std::vector<JsonValue>& items() const { return items_; }
  const std::map<std::string, JsonValue, std::less<>>& members() const { return members_; }

 private:
  friend class JsonParser;
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<JsonValue> items_;
  std::map<std::string, JsonValue, std::less<>> members_;
};

// Parses one JSON document (surrounding whitespace allowed). Errors are
// Code::kCorrupt with the byte offset: "json: offset 12: expected ':'".
Result<JsonValue> ParseJson(std::string_view text);

}  // namespace cm
