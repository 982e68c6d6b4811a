// The push edges' side of push/auth.h: the wall clock, nonces, the keys, and
// the checks every HTTP handler and every call runs. The CCM seals orders and
// its answers to /v1/next and /v1/source-failed with its signing key; relays
// stamp their reports with the report key (from the group key); every POST
// is refused unless its CM-Auth header verifies (401/403/409, one log line,
// nothing changed). Thread-safe.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "http/server.h"
#include "http/wire.h"
#include "pack/keys.h"
#include "push/auth.h"
#include "push/core_io.h"
#include "push/messages.h"

namespace cm::pushrun {

// Unix seconds now.
int64_t WallSeconds();
// kNonceHexSize random hex digits (libsodium's RNG).
std::string NewNonce();

constexpr int64_t kReportLifetime = 600;  // seconds a report's stamp is valid

class AuthEdge {
 public:
  // self: this node's name as `to` of what it receives ("ccm-..." for a
  // CCM run, the server's name for a relay).
  AuthEdge(std::string self, std::optional<pack::SigningKey> sign, std::optional<pack::PublicKey> ccm_pub,
           std::optional<GroupKey> group_key);

  const std::string& self() const { return self_; }

  // CCM: an order (or anything the CCM says) sealed for `to`, valid for
  // `lifetime_s` seconds.
  push::Sealed Seal(const std::string& to, push::Endpoint ep, std::string body, int64_t lifetime_s) const;
  // CCM: the CM-Auth header for its answer to `req_path` from `to`.
  std::string SealAnswer(const std::string& to, const std::string& req_path, const std::string& body) const;

  // The headers a call carries: the sealed order's, or a report stamp from
  // us to call.to (POSTs only).
  http::HeaderList Stamp(const push::Call& call) const;
  // A relay's answer stamped for `to` with the report key (mac, method
  // "ANSWER", path `req_path`): GET /v1/status?nonce=... (the CCM checks
  // it with CheckStampedAnswer). "" without a group key.
  std::string StampAnswer(const std::string& to, const std::string& req_path, const std::string& body) const;
  // The CCM: a relay's stamped answer to `req_path` comes from `from` and is
  // for "ccm" (the stamp's nonce is not remembered: the caller checks the
  // nonce it sent, echoed in the body).
  push::auth::Verdict CheckStampedAnswer(const http::HeaderMap& headers, const std::string& from,
                                         const std::string& req_path, const std::string& body) const;
  // Checks the CCM's signed answer to a call of ours ("" = fine, else why).
  std::string CheckAnswer(const push::Call& call, const http::HeaderMap& headers, const std::string& body) const;

  // Checks a request: an order from the CCM to us (ed25519) or a report to
  // us (mac); `to` is us unless given. kOk or the verdict; *from = the
  // sender's name on kOk.
  push::auth::Verdict CheckOrder(const http::Request& req);
  push::auth::Verdict CheckReport(const http::Request& req, std::string* from = nullptr, const std::string& to = {});
  // The refusal for a verdict, logged with the request.
  static http::Response Refuse(push::auth::Verdict v, const http::Request& req);

 private:
  std::string SignFor(const std::string& to, std::string_view method, std::string_view path, std::string_view body,
                      int64_t lifetime_s) const;
  std::string self_;
  std::optional<pack::SigningKey> sign_;
  std::optional<pack::PublicKey> ccm_pub_;
  std::optional<GroupKey> report_key_;
  std::mutex mu_;
  push::auth::NonceCache cache_;
};

// "ccm-" and 16 random hex digits: a CCM run's name.
std::string NewCcmId();

}  // namespace cm::pushrun
