// What the push cores (relay_core.h on every server, job_core.h on the CCM)
// exchange with whatever drives them: outgoing HTTP calls as typed values,
// their results, and the answers to incoming requests. The cores follow
// proto/core.h's contract (no clock, socket, thread, file or global RNG);
// lib/pushrun runs these values over HTTP, the simulator in
// tests/unit/push routes them between cores on virtual time.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proto/core.h"

namespace cm::push {

using proto::Micros;

// The endpoints of docs/protocol/push.md that a core calls.
enum class Endpoint : uint8_t {
  kFetch,         // POST /v1/fetch          (CCM or leader -> leader)
  kExpect,        // POST /v1/expect         (leader -> member)
  kMemberReport,  // POST /v1/member-report  (member -> leader)
  kSiteReport,    // POST /v1/site-report    (leader -> CCM)
  kProgress,      // POST /v1/progress       (leader -> CCM)
  kNext,          // POST /v1/next           (leader -> CCM)
  kSourceFailed,  // POST /v1/source-failed  (leader -> CCM)
  kNotifyFailed,  // POST /v1/notify-failed  (leader -> CCM)
  kStatus,        // GET  /v1/status         (CCM -> relay, leader -> member: is it alive, what does it hold?)
  kRelayFailed,   // POST /v1/relay-failed   (leader -> CCM: it cannot do its part, and why)
};
const char* EndpointPath(Endpoint e);    // "/v1/fetch", ...
const char* EndpointMethod(Endpoint e);  // "POST", or "GET" for kStatus
// The endpoint a request path names; false for any other path.
bool ParseEndpoint(std::string_view path, Endpoint* out);

using CallId = uint64_t;

// An outgoing request. Its outcome comes back to the same core as a
// CallResult with the same id, exactly once (the edge guarantees it, also on
// timeout). A core never waits for it: it goes on handling events.
struct Call {
  CallId id = 0;
  std::string base_url;  // http://host:port of the callee
  Endpoint endpoint = Endpoint::kStatus;
  std::string body;      // JSON (push/messages.h); empty for kStatus
  Micros timeout = 5 * proto::kSeconds;
  std::string to;        // the callee's name: `to` of the CM-Auth stamp the edge adds ("" = none)
  std::string auth;      // a CM-Auth value made by the CCM (a sealed order passed on): sent as is
  std::string query;     // appended to the path as is ("?unicast=1"); outside the CM-Auth stamp: hints only
};

struct CallResult {
  CallId id = 0;
  bool reached = false;  // an HTTP answer arrived (any status); false: connect/transport error or timeout
  int status = 0;        // HTTP status when reached
  std::string body;      // the answer's body when reached; the transport error's text otherwise
  bool ok() const { return reached && status / 100 == 2; }
};

// A core's synchronous answer to an incoming request (the edge writes it as
// the HTTP response at once: handlers never wait on anything else).
struct Reply {
  int status = 200;
  std::string body;  // JSON
};

}  // namespace cm::push
