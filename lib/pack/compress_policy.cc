#include "pack/compress_policy.h"

#include <algorithm>
#include <cmath>

namespace cm::pack {

CompressPolicy CompressPolicy::Default() {
  CompressPolicy p;
  p.stored_extensions = {"jpg", "jpeg", "png", "gif", "webp", "avif", "heic", "mp3", "mp4", "m4a", "m4v",
                         "mkv", "webm", "mov", "avi", "ogg", "oga", "ogv", "opus", "flac", "aac",
                         "zip", "gz", "tgz", "bz2", "tbz2", "xz", "txz", "zst", "lz4", "lzma", "7z",
                         "rar", "br", "jar", "war", "apk", "deb", "rpm", "woff", "woff2", "cab", "dmg"};
  return p;
}

double SampleEntropy(const uint8_t* p, size_t n) {
  if (n == 0) return 0;
  size_t counts[256] = {};
  for (size_t i = 0; i < n; ++i) ++counts[p[i]];
  double h = 0;
  for (size_t c : counts) {
    if (!c) continue;
    double f = static_cast<double>(c) / static_cast<double>(n);
    h -= f * std::log2(f);
  }
  return h;
}

bool ShouldCompress(const CompressPolicy& policy, std::string_view path, const uint8_t* sample, size_t n) {
  auto slash = path.find_last_of('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  auto dot = base.find_last_of('.');
  if (dot != std::string_view::npos && dot + 1 < base.size()) {
    std::string ext(base.substr(dot + 1));
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (std::find(policy.stored_extensions.begin(), policy.stored_extensions.end(), ext) !=
        policy.stored_extensions.end())
      return false;
  }
  if (n < 64) return true;  // tiny: grouping with others compresses them anyway
  // Random or compressed data sits near 8 bits/byte; text is under 5.
  return !(policy.entropy_test && SampleEntropy(sample, n) > 7.5);
}

}  // namespace cm::pack
