// Serving what a node holds of an assignment over HTTP: a BodySource over
// push::HeldContent, so a GET of bytes not yet checked waits for them.
#pragma once

#include <atomic>
#include <memory>

#include "http/server.h"
#include "push/held_content.h"

namespace cm::pushrun {

// `served` (may be null; must outlive the body) counts the bytes read out.
std::shared_ptr<http::BodySource> MakeContentBody(std::shared_ptr<push::HeldContent> held,
                                                  std::shared_ptr<std::atomic<uint64_t>> served = nullptr);

}  // namespace cm::pushrun
