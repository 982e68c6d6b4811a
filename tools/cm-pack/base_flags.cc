#include "base_flags.h"

namespace cm::pack {

void AddBaseFlags(CLI::App* app, PackSettings* s, bool only_result) {
  if (!only_result) {
    app->add_option("--base-release", s->base_release,
                    "The release the delta applies to (default: from the delta table; 'none')")->type_name("NAME");
    app->add_option("--base-serial", s->base_serial, "Its serial (default: from the delta table; 0 = unknown)")
        ->type_name("N");
    app->add_option("--base-manifest", s->base_manifest,
                    "Manifest hash the live tree must have (default: from the delta table; 'none' = no check)")
        ->type_name("HEX|none");
  }
  app->add_option("--result-manifest", s->result_manifest,
                  "Manifest hash the staged tree must have (default: from the delta table; 'none')")
      ->type_name("HEX|none");
  app->add_flag("--no-base", s->no_base, "No BASE command (for servers whose cm-apply predates it)");
}

}  // namespace cm::pack
