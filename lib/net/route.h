// What routing says about this host, without Asio.
#pragma once

#include <optional>

#include "proto/core.h"

namespace cm::net {

// The address this host sends to `dest` from (the kernel's route choice), with
// dest's port; nullopt when there is no route. Sends nothing.
std::optional<proto::Address> LocalAddressFor(proto::Address dest);

}  // namespace cm::net
