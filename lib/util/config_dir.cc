#include "util/config_dir.h"

#include <unistd.h>

#include <cstdlib>

namespace cm {

std::string ConfigDir() {
  const char* env = std::getenv("CM_CONFIG_DIR");
  return env && *env ? env : "/etc/content-mover";
}

std::string DefaultFile(const std::string& given, const char* file) {
  if (!given.empty()) return given;
  std::string path = ConfigDir() + "/" + file;
  return ::access(path.c_str(), F_OK) == 0 ? path : "";
}

}  // namespace cm
