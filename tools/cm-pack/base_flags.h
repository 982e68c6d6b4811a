// cm-pack's flags for the BASE command (man cm-pack(1), BASE): the CCM sets or
// overrides what cm-delta wrote into the delta table.
#pragma once

#include <CLI/CLI.hpp>

#include "pack/pack_settings.h"

namespace cm::pack {

// All of them (delta packing), or only_result: --result-manifest and
// --no-base (whole trees apply to any tree).
void AddBaseFlags(CLI::App* app, PackSettings* s, bool only_result = false);

}  // namespace cm::pack
