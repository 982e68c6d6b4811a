// TOML under flags, the one layering every tool uses for its --config file:
// a flag the user gave wins, a TOML key fills only what the user did not
// give, and a key nobody bound is an error. Each key is bound to the variable
// its CLI11 option writes, and to that option, whose count() tells whether
// the user gave it:
//
//   TomlFlags t;
//   t.Bind("group", &o.group, app.get_option("--group"))
//    .Bind("passes", &o.passes, app.get_option("--passes"))
//    .Require([&] { return o.passes >= 1; }, "an integer of at least 1");
//   if (Status st = t.Apply(o.config); !st.ok()) ...   // after app.parse()
//
// A key bound without an option (nullptr) is always filled from the file:
// a setting with no flag, or a list the tool combines with its flag's.
// Every error is one line that starts "FILE:LINE: " (the key's line).
// Neither CLI11 nor toml++ appear in this header.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "util/status.h"

namespace CLI {
class Option;
}

namespace cm {

class TomlFlags {
 public:
  // What a key may fill. Integers accept TOML integers in range, double
  // accepts integers too, a string also takes an integer as its decimal text
  // (as the flag would: chunk_size = 65536 or "64K"); a list accepts an array
  // of that element type (of strings: strings only).
  using Target = std::variant<std::string*, bool*, int*, int64_t*, uint64_t*, double*, std::vector<std::string>*,
                              std::vector<uint64_t>*>;

  // Binds `key` to *var (which `flag`, when not null, also writes).
  TomlFlags& Bind(std::string key, Target var, const CLI::Option* flag);
  // The same for a setting with more than one flag (e.g. --checksum and
  // --no-checksum): the file fills *var only when none of them was given.
  TomlFlags& Bind(std::string key, Target var, std::initializer_list<const CLI::Option*> flags);
  // A condition on the value the last bound key took from the file (run only
  // when the file filled it); when false, Apply fails with
  // "FILE:LINE: KEY: expected WANT".
  TomlFlags& Require(std::function<bool()> ok, std::string want);

  // Parses the TOML file at `path` and fills the variables whose flags were
  // not given. kUsage with one line naming the file, the line and the key on:
  // a syntax error, an unknown key, a value of the wrong type, out of range or
  // failing its Require. An unreadable file is kUsage too (a --config the
  // user named); read the file yourself and call ApplyText for other codes.
  Status Apply(const std::string& path) const;
  // The same for TOML text (`name` stands for the file in messages).
  Status ApplyText(std::string_view text, const std::string& name) const;

 private:
  struct Binding {
    std::string key;
    Target var;
    std::vector<const CLI::Option*> flags;  // null entries ignored
    std::function<bool()> ok;  // empty: no condition
    std::string want;
  };
  std::vector<Binding> bindings_;
};

}  // namespace cm
