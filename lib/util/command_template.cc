#include "util/command_template.h"

namespace cm {

Result<std::vector<std::string>> SplitCommand(std::string_view command) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < command.size(); ++i) {
    char c = command[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      size_t end = command.find('\'', i + 1);
      if (end == std::string_view::npos) return Error(Code::kUsage, "unterminated ' in command: " + std::string(command));
      word.append(command.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      for (++i;; ++i) {
        if (i >= command.size()) return Error(Code::kUsage, "unterminated \" in command: " + std::string(command));
        if (command[i] == '"') break;
        if (command[i] == '\\' && i + 1 < command.size() && (command[i + 1] == '"' || command[i + 1] == '\\')) ++i;
        word += command[i];
      }
    } else if (c == '\\' && i + 1 < command.size()) {
      word += command[++i];
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  if (words.empty()) return Error(Code::kUsage, "empty command");
  return words;
}

std::vector<std::string> SubstituteBraces(const std::vector<std::string>& argv, std::string_view value) {
  std::vector<std::string> out;
  out.reserve(argv.size());
  for (const std::string& w : argv) {
    std::string r;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w.compare(i, 2, "{}") == 0) {
        r.append(value);
        ++i;
      } else {
        r += w[i];
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace cm
