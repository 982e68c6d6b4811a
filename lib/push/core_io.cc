#include "push/core_io.h"

namespace cm::push {
namespace {

constexpr const char* kPaths[] = {"/v1/fetch",    "/v1/expect", "/v1/member-report", "/v1/site-report", "/v1/progress",
                                  "/v1/next",     "/v1/source-failed", "/v1/notify-failed", "/v1/status",
                                  "/v1/relay-failed"};

}  // namespace

const char* EndpointPath(Endpoint e) { return kPaths[static_cast<int>(e)]; }
const char* EndpointMethod(Endpoint e) { return e == Endpoint::kStatus ? "GET" : "POST"; }

bool ParseEndpoint(std::string_view path, Endpoint* out) {
  for (size_t i = 0; i < std::size(kPaths); ++i) {
    if (path == kPaths[i]) {
      *out = static_cast<Endpoint>(i);
      return true;
    }
  }
  return false;
}

}  // namespace cm::push
