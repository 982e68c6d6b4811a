// libFuzzer target for the HTTP parsers (wire.h). Build with -DCM_FUZZ=ON and
// clang. The first byte picks where the input is split (the parsers must give
// the same result however the bytes arrive); the rest is fed to a request
// parser and to a response parser. Checks: no crash, consumption never
// exceeds the input, and a split never changes the outcome. For odd sizes the
// request's body limit is lowered once its header is in, as a route's limit
// is (ServerOptions::body_limit): a body over it is never delivered.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/wire.h"

namespace {

struct Outcome {
  cm::http::ParseStatus status;
  std::string body;
  bool operator==(const Outcome&) const = default;
};

constexpr uint64_t kRouteLimit = 64;

Outcome Request(std::string_view in, size_t cut, bool lower) {
  cm::http::RequestParser p(4096, 1 << 16);
  bool lowered = false;
  std::string pending;
  cm::http::ParseStatus st = cm::http::ParseStatus::kNeedMore;
  for (std::string_view piece : {in.substr(0, cut), in.substr(cut)}) {
    pending.append(piece);
    for (;;) {
      size_t used = 0;
      st = p.Feed(pending, &used);
      if (used > pending.size()) std::abort();
      pending.erase(0, used);
      if (lower && !lowered && st == cm::http::ParseStatus::kNeedMore && p.header_done()) {
        lowered = true;
        if (!p.LowerBodyLimit(kRouteLimit)) {
          if (p.error() != cm::http::ParseError::kBodyTooLarge) std::abort();
          st = cm::http::ParseStatus::kError;
          break;
        }
        if (!pending.empty()) continue;
      }
      if (st != cm::http::ParseStatus::kNeedMore || used == 0 || pending.empty()) break;
    }
    if (st != cm::http::ParseStatus::kNeedMore) break;
  }
  if (st == cm::http::ParseStatus::kNeedMore) st = p.FeedEof();
  Outcome o{st, ""};
  if (st == cm::http::ParseStatus::kDone) {
    (void)p.method();
    (void)p.headers();
    o.body = p.TakeBody();
    if (lowered && o.body.size() > kRouteLimit) std::abort();
  }
  return o;
}

Outcome Response(std::string_view in, size_t cut, bool head) {
  cm::http::ResponseParser p(head, 1 << 16, 4096);
  Outcome o{cm::http::ParseStatus::kNeedMore, ""};
  auto sink = [&o](std::string_view b) {
    o.body.append(b);
    return true;
  };
  std::string pending;
  for (std::string_view piece : {in.substr(0, cut), in.substr(cut)}) {
    pending.append(piece);
    for (;;) {
      size_t used = 0;
      o.status = p.Feed(pending, &used, sink);
      if (used > pending.size()) std::abort();
      pending.erase(0, used);
      if (o.status != cm::http::ParseStatus::kNeedMore || used == 0 || pending.empty()) break;
    }
    if (o.status != cm::http::ParseStatus::kNeedMore) break;
  }
  if (o.status == cm::http::ParseStatus::kNeedMore) o.status = p.FeedEof(sink);
  if (p.body_bytes() != o.body.size()) std::abort();
  return o;
}

}  // namespace

int CmFuzzHttpWire(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t cut = in.empty() ? 0 : data[0] % (in.size() + 1);
  const bool lower = size % 2 == 1;
  // Splitting may only matter through the limits, which these inputs stay under.
  if (in.size() < 4000) {
    if (!(Request(in, cut, lower) == Request(in, in.size(), lower))) std::abort();
    if (!(Response(in, cut, false) == Response(in, in.size(), false))) std::abort();
  } else {
    Request(in, cut, lower);
    Response(in, cut, false);
  }
  Response(in, cut, true);
  return 1;
}

#ifdef CM_FUZZ_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  CmFuzzHttpWire(data, size);
  return 0;
}
#endif
