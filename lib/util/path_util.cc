#include "util/path_util.h"

namespace cm {

bool IsSafeContentPath(std::string_view p) {
  if (p.empty() || p.size() > kMaxContentPath || p.front() == '/' || p.back() == '/') return false;
  size_t start = 0;
  for (;;) {
    size_t end = p.find('/', start);
    std::string_view comp = p.substr(start, end == std::string_view::npos ? p.npos : end - start);
    if (comp.empty() || comp == "." || comp == "..") return false;
    if (comp.find('\0') != std::string_view::npos) return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

}  // namespace cm
