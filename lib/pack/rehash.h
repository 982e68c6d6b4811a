// For fuzz targets and their unit tests only: makes a would-be assignment's
// sizes, chunk table and hashes consistent with its bytes, so that mutated
// inputs get past the hash checks into the parsers behind them.
#pragma once

#include <string>

namespace cm::pack {

// Reads the header fields in place (whatever they hold): keeps data_size when
// it fits, gives the body the rest, and for a header with the chunk table
// flag and a valid chunk size also sets chunk_count, rewrites the table (the
// file may grow by up to 32 zero bytes to fit a table) and the table and
// trailer hashes. Then data hash, body hash and header hash. Files shorter
// than header + trailer are left alone. The signature is not touched.
void RehashForFuzzing(std::string* file);

}  // namespace cm::pack
