// The push control plane's name for CM-Auth (util/cm_auth.h, where the
// primitives live so that cm-leader's edge uses them too without the push
// libraries).
#pragma once

#include "util/cm_auth.h"

namespace cm::push {
namespace auth = ::cm::cm_auth;
}  // namespace cm::push
