// The push control plane's authentication (docs/SECURITY.md,
// docs/protocol/push.md "Authentication"): one HTTP header, CM-Auth, on
// every POST between the CCM and relays and on the CCM's answers to
// /v1/next and /v1/source-failed.
//
//   CM-Auth: v=1 alg=ed25519|mac from=NAME to=NAME exp=UNIX_SECONDS nonce=HEX32 tag=BASE64
//
// The tag authenticates, in this order and separated by "\n":
//   "cm-auth-v1", alg, method, path, from, to, exp, nonce, body
// alg=ed25519: the CCM's Ed25519 signing key (orders: /v1/fetch, /v1/expect,
//   and the CCM's answers). Relays check it with the public key they already
//   trust for assignments; an order a leader passes on is the CCM's sealed
//   order, byte for byte.
// alg=mac: util/group_key.h's ComputeMac (keyed BLAKE2b, 16 bytes: the one
//   MAC of the project) with ReportKey(group key) (reports: progress, next,
//   source-failed, notify-failed, site-report, member-report, and
//   cm-leader's leader-report). Every server holds the group key.
// A receiver accepts a message only when the tag verifies, `to` is itself,
// exp has not passed (allowing kClockSkew) and is at most kMaxLifetime ahead,
// and the nonce was not seen before (NonceCache). Pure: no clock (the time
// is an argument), no RNG (the nonce is an argument), no I/O. In util so that
// every edge (pushrun, leaderrun) uses the one construction; the push
// libraries see it as cm::push::auth (push/auth.h).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "util/group_key.h"
#include "util/status.h"

namespace cm::cm_auth {

// Ed25519 key bytes as libsodium holds them (pack::SigningKey::secret,
// pack::PublicKey::bytes).
using SigningSecret = std::array<uint8_t, 64>;
using PublicKeyBytes = std::array<uint8_t, 32>;

constexpr const char* kHeader = "CM-Auth";      // as sent
constexpr const char* kHeaderLower = "cm-auth";  // as looked up
constexpr const char* kCcmName = "ccm";          // `from` of every order
constexpr int64_t kClockSkew = 120;              // seconds a receiver's clock may be behind the sender's
constexpr int64_t kMaxLifetime = 8 * 24 * 3600;  // an exp further ahead than this is refused
constexpr size_t kNonceHexSize = 32;
constexpr size_t kMaxHeaderSize = 1024;

enum class Alg : uint8_t { kEd25519, kMac };

struct Stamp {
  Alg alg = Alg::kMac;
  std::string from, to;
  int64_t exp = 0;    // unix seconds
  std::string nonce;  // kNonceHexSize lower-case hex digits
  std::string tag;    // base64 of the signature (64 bytes) or MAC (kMacSize = 16 bytes)
};

// The header value for a stamp (tag included).
std::string Format(const Stamp& s);
// Total: any input; kCorrupt with the reason for a malformed header.
Result<Stamp> Parse(std::string_view header);

// The bytes the tag covers.
std::string SignedBytes(const Stamp& s, std::string_view method, std::string_view path, std::string_view body);

// The MAC key for reports, derived from the group key (a KDF: keyed
// BLAKE2b-256 of a context string; domain-separated from the key's other
// uses: cm-leader's channel, cm-mcast, encryption).
GroupKey ReportKey(const GroupKey& group_key);

// Fills s.tag. `s.alg` selects which key is used.
void Sign(Stamp* s, const SigningSecret& key, std::string_view method, std::string_view path,
          std::string_view body);
void Mac(Stamp* s, const GroupKey& report_key, std::string_view method, std::string_view path,
         std::string_view body);

// Why a message was refused (kOk: accepted).
enum class Verdict : uint8_t {
  kOk,
  kMissing,        // no CM-Auth header                         -> 401
  kMalformed,      // unparsable header                          -> 401
  kWrongAlg,       // e.g. a MAC where an order needs a signature -> 401
  kBadTag,         // signature or MAC does not verify            -> 401
  kWrongSender,    // an order not from the CCM                   -> 403
  kWrongRecipient, // `to` is not this receiver                   -> 403
  kExpired,        // exp passed                                  -> 403
  kTooFarAhead,    // exp more than kMaxLifetime ahead            -> 403
  kReplayed,       // nonce seen before                           -> 409
};
const char* VerdictText(Verdict v);  // "unauthenticated: no CM-Auth header", ...
int VerdictStatus(Verdict v);        // 200, 401, 403, 409

// Remembers accepted nonces until their exp (plus kClockSkew); bounded: at
// most `capacity` entries, the soonest-expiring dropped first when full.
// Only authenticated messages are inserted, so only the CCM and servers can
// fill it.
class NonceCache {
 public:
  explicit NonceCache(size_t capacity = 1 << 16) : capacity_(capacity) {}
  // false if the nonce is present (a replay); else records it.
  bool Insert(const std::string& nonce, int64_t exp, int64_t now);
  size_t size() const { return by_nonce_.size(); }

 private:
  size_t capacity_;
  std::map<std::string, int64_t> by_nonce_;
  std::set<std::pair<int64_t, std::string>> by_exp_;
};

// What a receiver expects of a message.
struct Expectation {
  Alg alg = Alg::kMac;
  std::string_view to;             // this receiver's name
  std::string_view from;           // required sender ("" = any; orders: kCcmName)
  const PublicKeyBytes* pub = nullptr;   // alg == kEd25519
  const GroupKey* report_key = nullptr;  // alg == kMac
};

// Checks `header` (nullptr = absent) for a request or answer. On kOk the
// nonce is recorded in `cache` (nullptr: not checked for replay) and *out
// (when given) holds the stamp.
Verdict Verify(const std::string* header, std::string_view method, std::string_view path, std::string_view body,
               const Expectation& want, int64_t now, NonceCache* cache, Stamp* out = nullptr);

}  // namespace cm::cm_auth
