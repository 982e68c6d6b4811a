#include "util/toml_flags.h"

#include <CLI/CLI.hpp>
#include <limits>
#include <toml++/toml.h>

#include "util/file_util.h"

namespace cm {
namespace {

template <typename Int>
bool SetInt(const toml::node& n, Int* out) {
  auto v = n.value_exact<int64_t>();
  if (!v) return false;
  if constexpr (std::is_unsigned_v<Int>) {
    if (*v < 0) return false;
  }
  if (*v < static_cast<int64_t>(std::numeric_limits<Int>::min()) ||
      static_cast<uint64_t>(*v) > static_cast<uint64_t>(std::numeric_limits<Int>::max()))
    return false;
  *out = static_cast<Int>(*v);
  return true;
}

// Fills *target from n; false when n has the wrong type or is out of range.
bool Set(const toml::node& n, const TomlFlags::Target& target) {
  return std::visit(
      [&](auto* p) -> bool {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (auto i = n.value_exact<int64_t>()) {  // as on the command line: --chunk-size 65536
            *p = std::to_string(*i);
            return true;
          }
          auto v = n.value_exact<std::string>();
          if (v) *p = *v;
          return v.has_value();
        } else if constexpr (std::is_same_v<T, bool>) {
          auto v = n.value_exact<bool>();
          if (v) *p = *v;
          return v.has_value();
        } else if constexpr (std::is_same_v<T, double>) {
          auto v = n.value<double>();  // an integer is a fine double
          if (v && (n.is_floating_point() || n.is_integer())) *p = *v;
          return v && (n.is_floating_point() || n.is_integer());
        } else if constexpr (std::is_integral_v<T>) {
          return SetInt(n, p);
        } else {
          const toml::array* arr = n.as_array();
          if (!arr) return false;
          T values;
          for (const toml::node& e : *arr) {
            typename T::value_type v{};
            if constexpr (std::is_same_v<typename T::value_type, std::string>) {
              auto s = e.value_exact<std::string>();
              if (!s) return false;
              v = *s;
            } else if (!SetInt(e, &v)) {
              return false;
            }
            values.push_back(std::move(v));
          }
          *p = std::move(values);
          return true;
        }
      },
      target);
}

// Whether n would fill target, without touching it.
bool Typed(const toml::node& n, const TomlFlags::Target& target) {
  return std::visit(
      [&](auto* p) {
        std::remove_pointer_t<decltype(p)> scratch{};
        return Set(n, TomlFlags::Target(&scratch));
      },
      target);
}

// What a key of this target's type must hold, for error messages.
const char* Want(const TomlFlags::Target& target) {
  return std::visit(
      [](auto* p) -> const char* {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>) return "a string or an integer";
        if constexpr (std::is_same_v<T, bool>) return "true or false";
        if constexpr (std::is_same_v<T, double>) return "a number";
        if constexpr (std::is_same_v<T, uint64_t>) return "a non-negative integer";
        if constexpr (std::is_integral_v<T>) return "an integer in range";
        if constexpr (std::is_same_v<T, std::vector<std::string>>) return "an array of strings";
        return "an array of non-negative integers";
      },
      target);
}

}  // namespace

TomlFlags& TomlFlags::Bind(std::string key, Target var, const CLI::Option* flag) {
  return Bind(std::move(key), var, {flag});
}

TomlFlags& TomlFlags::Bind(std::string key, Target var, std::initializer_list<const CLI::Option*> flags) {
  bindings_.push_back({std::move(key), var, flags, {}, {}});
  return *this;
}

TomlFlags& TomlFlags::Require(std::function<bool()> ok, std::string want) {
  if (!bindings_.empty()) {
    bindings_.back().ok = std::move(ok);
    bindings_.back().want = std::move(want);
  }
  return *this;
}

Status TomlFlags::Apply(const std::string& path) const {
  auto text = ReadFileToString(path);
  if (!text.ok()) return Error(Code::kUsage, text.status().message());
  return ApplyText(*text, path);
}

Status TomlFlags::ApplyText(std::string_view text, const std::string& name) const {
  toml::table t;
  try {
    t = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return Error(Code::kUsage, name + ":" + std::to_string(at.line) + ": " + std::string(e.description()));
  }
  auto fail = [&](const toml::node& n, const std::string& key, const std::string& what) {
    return Error(Code::kUsage, name + ":" + std::to_string(n.source().begin.line) + ": " + key + ": " + what);
  };
  // Every key first: an unknown one is an error even when a flag covers the rest.
  for (const auto& [key, node] : t) {
    bool known = false;
    for (const Binding& b : bindings_) known |= b.key == key.str();
    if (!known) return fail(node, std::string(key.str()), "unknown key");
  }
  for (const Binding& b : bindings_) {
    const toml::node* n = t.get(b.key);
    if (!n) continue;
    bool given = false;
    for (const CLI::Option* f : b.flags) given |= f && f->count() > 0;
    if (given) {  // the user's flag wins; the file's value must still be well typed
      if (!Typed(*n, b.var)) return fail(*n, b.key, std::string("expected ") + Want(b.var));
      continue;
    }
    if (!Set(*n, b.var)) return fail(*n, b.key, std::string("expected ") + Want(b.var));
    if (b.ok && !b.ok()) return fail(*n, b.key, "expected " + b.want);
  }
  return Status::Ok();
}

}  // namespace cm
