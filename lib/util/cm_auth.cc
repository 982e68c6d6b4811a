#include "util/cm_auth.h"

#include <sodium.h>

#include <cctype>
#include <charconv>
#include <vector>

#include "util/hash.h"

namespace cm::cm_auth {
namespace {

const char* AlgName(Alg a) { return a == Alg::kEd25519 ? "ed25519" : "mac"; }

std::string Base64(const uint8_t* p, size_t n) {
  std::vector<char> b64(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL));
  sodium_bin2base64(b64.data(), b64.size(), p, n, sodium_base64_VARIANT_ORIGINAL);
  return std::string(b64.data());
}

// Exactly the encoding Base64 makes of n bytes: nothing before, after or
// instead of it (a tag has one spelling).
bool FromBase64(std::string_view b64, uint8_t* out, size_t n) {
  size_t got = 0;
  const char* end = nullptr;
  return sodium_base642bin(out, n, b64.data(), b64.size(), nullptr, &got, &end, sodium_base64_VARIANT_ORIGINAL) ==
             0 &&
         got == n && end == b64.data() + b64.size() && Base64(out, n) == b64;
}

// A name in a header: printable ASCII without space, '=' or ','.
bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char c : s)
    if (c <= ' ' || c > '~' || c == '=' || c == ',') return false;
  return true;
}

bool ValidNonce(std::string_view s) {
  if (s.size() != kNonceHexSize) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

Status Bad(const std::string& why) { return Error(Code::kCorrupt, "CM-Auth: " + why); }

}  // namespace

std::string Format(const Stamp& s) {
  return std::string("v=1 alg=") + AlgName(s.alg) + " from=" + s.from + " to=" + s.to +
         " exp=" + std::to_string(s.exp) + " nonce=" + s.nonce + " tag=" + s.tag;
}

Result<Stamp> Parse(std::string_view h) {
  if (h.size() > kMaxHeaderSize) return Bad("too long");
  Stamp s;
  bool seen[7] = {};
  static constexpr const char* kKeys[] = {"v", "alg", "from", "to", "exp", "nonce", "tag"};
  size_t pos = 0;
  while (pos < h.size()) {
    if (h[pos] == ' ') {
      ++pos;
      continue;
    }
    size_t end = h.find(' ', pos);
    if (end == std::string_view::npos) end = h.size();
    std::string_view tok = h.substr(pos, end - pos);
    pos = end;
    size_t eq = tok.find('=');
    if (eq == std::string_view::npos) return Bad("field without '='");
    std::string_view key = tok.substr(0, eq), val = tok.substr(eq + 1);
    int k = -1;
    for (int i = 0; i < 7; ++i)
      if (key == kKeys[i]) k = i;
    if (k < 0) return Bad("unknown field " + std::string(key.substr(0, 32)));
    if (seen[k]) return Bad("repeated field " + std::string(key));
    seen[k] = true;
    switch (k) {
      case 0:
        if (val != "1") return Bad("version " + std::string(val.substr(0, 16)) + " not supported");
        break;
      case 1:
        if (val == "ed25519") {
          s.alg = Alg::kEd25519;
        } else if (val == "mac") {
          s.alg = Alg::kMac;
        } else {
          return Bad("unknown alg");
        }
        break;
      case 2:
      case 3:
        if (!ValidName(val)) return Bad(std::string("bad ") + kKeys[k]);
        (k == 2 ? s.from : s.to) = std::string(val);
        break;
      case 4: {
        auto [p, ec] = std::from_chars(val.data(), val.data() + val.size(), s.exp);
        if (ec != std::errc() || p != val.data() + val.size() || s.exp <= 0 || val.size() > 12) return Bad("bad exp");
        break;
      }
      case 5:
        if (!ValidNonce(val)) return Bad("bad nonce");
        s.nonce = std::string(val);
        break;
      case 6:
        if (val.empty() || val.size() > 128) return Bad("bad tag");
        for (char c : val)
          if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=')) return Bad("bad tag");
        s.tag = std::string(val);
        break;
    }
  }
  for (int i = 0; i < 7; ++i)
    if (!seen[i]) return Bad(std::string("missing ") + kKeys[i]);
  return s;
}

std::string SignedBytes(const Stamp& s, std::string_view method, std::string_view path, std::string_view body) {
  std::string m = "cm-auth-v1\n";
  m += AlgName(s.alg);
  m += '\n';
  m += method;
  m += '\n';
  m += path;
  m += '\n';
  m += s.from;
  m += '\n';
  m += s.to;
  m += '\n';
  m += std::to_string(s.exp);
  m += '\n';
  m += s.nonce;
  m += '\n';
  m += body;
  return m;
}

GroupKey ReportKey(const GroupKey& group_key) {
  InitCrypto();
  GroupKey out{};
  static constexpr std::string_view kContext = "cm-push report key v1";
  crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(kContext.data()), kContext.size(),
                     group_key.data(), group_key.size());
  return out;
}

void Sign(Stamp* s, const SigningSecret& key, std::string_view method, std::string_view path,
          std::string_view body) {
  InitCrypto();
  s->alg = Alg::kEd25519;
  std::string m = SignedBytes(*s, method, path, body);
  std::array<uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                       key.data());
  s->tag = Base64(sig.data(), sig.size());
}

void Mac(Stamp* s, const GroupKey& report_key, std::string_view method, std::string_view path,
         std::string_view body) {
  s->alg = Alg::kMac;
  InitCrypto();
  const cm::Mac mac = ComputeMac(report_key, SignedBytes(*s, method, path, body));
  s->tag = Base64(mac.data(), mac.size());
}

const char* VerdictText(Verdict v) {
  switch (v) {
    case Verdict::kOk: return "authenticated";
    case Verdict::kMissing: return "unauthenticated: no CM-Auth header";
    case Verdict::kMalformed: return "unauthenticated: malformed CM-Auth header";
    case Verdict::kWrongAlg: return "unauthenticated: wrong kind of CM-Auth tag for this request";
    case Verdict::kBadTag: return "unauthenticated: CM-Auth tag does not verify";
    case Verdict::kWrongSender: return "forbidden: not an order of the CCM";
    case Verdict::kWrongRecipient: return "forbidden: addressed to another server";
    case Verdict::kExpired: return "forbidden: expired";
    case Verdict::kTooFarAhead: return "forbidden: expiry too far ahead";
    case Verdict::kReplayed: return "replayed: this message was accepted before";
  }
  return "?";
}

int VerdictStatus(Verdict v) {
  switch (v) {
    case Verdict::kOk: return 200;
    case Verdict::kMissing:
    case Verdict::kMalformed:
    case Verdict::kWrongAlg:
    case Verdict::kBadTag: return 401;
    case Verdict::kReplayed: return 409;
    default: return 403;
  }
}

bool NonceCache::Insert(const std::string& nonce, int64_t exp, int64_t now) {
  while (!by_exp_.empty() && by_exp_.begin()->first + kClockSkew < now) {
    by_nonce_.erase(by_exp_.begin()->second);
    by_exp_.erase(by_exp_.begin());
  }
  if (by_nonce_.count(nonce)) return false;
  if (capacity_ == 0) return true;
  while (by_nonce_.size() >= capacity_) {
    by_nonce_.erase(by_exp_.begin()->second);
    by_exp_.erase(by_exp_.begin());
  }
  by_nonce_[nonce] = exp;
  by_exp_.insert({exp, nonce});
  return true;
}

Verdict Verify(const std::string* header, std::string_view method, std::string_view path, std::string_view body,
               const Expectation& want, int64_t now, NonceCache* cache, Stamp* out) {
  if (!header) return Verdict::kMissing;
  auto s = Parse(*header);
  if (!s.ok()) return Verdict::kMalformed;
  if (s->alg != want.alg) return Verdict::kWrongAlg;
  const std::string m = SignedBytes(*s, method, path, body);
  if (s->alg == Alg::kEd25519) {
    std::array<uint8_t, crypto_sign_BYTES> sig{};
    if (!want.pub || !FromBase64(s->tag, sig.data(), sig.size())) return Verdict::kBadTag;
    InitCrypto();
    if (crypto_sign_verify_detached(sig.data(), reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                                    want.pub->data()) != 0)
      return Verdict::kBadTag;
  } else {
    cm::Mac got{};
    if (!want.report_key || !FromBase64(s->tag, got.data(), got.size())) return Verdict::kBadTag;
    InitCrypto();
    if (!MacMatches(*want.report_key, m, got.data())) return Verdict::kBadTag;
  }
  if (!want.from.empty() && s->from != want.from) return Verdict::kWrongSender;
  if (s->to != want.to) return Verdict::kWrongRecipient;
  if (s->exp + kClockSkew < now) return Verdict::kExpired;
  if (s->exp > now + kMaxLifetime + kClockSkew) return Verdict::kTooFarAhead;
  if (cache && !cache->Insert(s->nonce, s->exp, now)) return Verdict::kReplayed;
  if (out) *out = std::move(*s);
  return Verdict::kOk;
}

}  // namespace cm::cm_auth
