// Serving what a node holds of an assignment over HTTP: a BodySource over
// push::HeldContent, so a GET of bytes not yet checked waits for them.
#pragma once

#include <memory>

#include "http/server.h"
#include "push/held_content.h"

namespace cm::pushrun {

std::shared_ptr<http::BodySource> MakeContentBody(std::shared_ptr<push::HeldContent> held);

}  // namespace cm::pushrun
