#include "util/path_util.h"

namespace cm {

const char* ContentPathProblem(std::string_view p) {
  if (p.empty()) return "empty";
  if (p.size() > kMaxContentPath) return "too long";
  if (p.find('\0') != std::string_view::npos) return "NUL byte";
  if (p.front() == '/') return "absolute";
  size_t start = 0;
  for (;;) {
    size_t end = p.find('/', start);
    std::string_view comp = p.substr(start, end == std::string_view::npos ? p.npos : end - start);
    if (comp.empty()) return "empty component";
    if (comp == ".") return "'.' component";
    if (comp == "..") return "'..' component";
    if (comp.size() > kMaxPathComponent) return "component too long";
    if (end == std::string_view::npos) return nullptr;
    start = end + 1;
  }
}

}  // namespace cm
