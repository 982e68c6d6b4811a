// Human and JSON descriptions of an assignment for `cm-pack inspect`.
#pragma once

#include <string>

#include "pack/assignment_reader.h"

namespace cm::pack {

// Opens and verifies the assignment (hashes; signature when opts.pub_key is
// set) and describes header and commands. When verification fails the
// description still shows the header and the returned status says why.
Status DescribeAssignment(const std::string& path, const ReaderOptions& opts, bool json, std::string* out);

}  // namespace cm::pack
