// Per-file compression policy: names with a stored (already compressed)
// extension are never compressed; everything else is compressed unless a
// quick entropy test of its first bytes says it looks random.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cm::pack {

struct CompressPolicy {
  // Lower-case extensions without the dot. Defaults: common media and archives.
  std::vector<std::string> stored_extensions;
  bool entropy_test = true;
  static CompressPolicy Default();
};

// sample: the first bytes of the file (up to 64 KiB is plenty).
bool ShouldCompress(const CompressPolicy& policy, std::string_view path, const uint8_t* sample, size_t n);
// Order-0 entropy in bits per byte of a sample.
double SampleEntropy(const uint8_t* p, size_t n);

}  // namespace cm::pack
