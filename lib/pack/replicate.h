// A whole-tree assignment (types replicate and restore): the delta of the
// tree against an empty one, packed.
#pragma once

#include <string>

#include "pack/packer.h"

namespace cm::pack {

Result<PackResult> PackTree(const std::string& dir, const PackOptions& opts);

}  // namespace cm::pack
