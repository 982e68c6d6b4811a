// TOML under flags, for a tool whose options CLI11 parses: a flag the user
// gave wins, a TOML key fills only what the user did not give, and a key
// nobody bound is an error. Each key is bound to the variable its CLI11 option
// writes, and to that option, whose count() tells whether the user gave it:
//
//   TomlFlags t;
//   t.Bind("group", &o.group, app.get_option("--group"))
//    .Bind("leaders", &o.leaders, run->get_option("--leaders"));
//   if (Status st = t.Apply(o.config); !st.ok()) ...   // after app.parse()
//
// A key bound without an option (nullptr) is always filled from the file.
// Neither CLI11 nor toml++ appear in this header.
#pragma once

#include <cstdint>
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
  // accepts integers too; a string list accepts an array of strings.
  using Target = std::variant<std::string*, bool*, int*, int64_t*, uint64_t*, double*, std::vector<std::string>*,
                              std::vector<uint64_t>*>;

  // Binds `key` to *var (which `flag`, when not null, also writes).
  TomlFlags& Bind(std::string key, Target var, const CLI::Option* flag);

  // Parses the TOML file at `path` and fills the variables whose flags were
  // not given. kUsage with one line naming the file and the key on: a syntax
  // error, an unknown key, a value of the wrong type or out of range.
  Status Apply(const std::string& path) const;
  // The same for TOML text (`name` stands for the file in messages).
  Status ApplyText(std::string_view text, const std::string& name) const;

 private:
  struct Binding {
    std::string key;
    Target var;
    const CLI::Option* flag;
  };
  std::vector<Binding> bindings_;
};

}  // namespace cm
