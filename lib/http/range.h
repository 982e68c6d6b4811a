// Byte ranges (RFC 9110 §14): the Range request header, one range only, and
// the Content-Range response header. Pure functions, total on any input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cm::http {

// Inclusive bounds, as on the wire: bytes first..last.
struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t length() const { return last - first + 1; }
  bool operator==(const ByteRange&) const = default;
};

struct RangeRequest {
  enum class Kind {
    kWhole,          // no Range header, or one in a unit other than bytes: serve 200 with everything
    kRange,          // serve 206 with `range`
    kUnsatisfiable,  // serve 416 with "Content-Range: bytes */size"
  };
  Kind kind = Kind::kWhole;
  ByteRange range;
};

// Interprets a Range header value against a resource of `size` bytes:
// "bytes=a-b" (b clamped to size-1), "bytes=a-", and the suffix form
// "bytes=-n" (the last n bytes). A first byte at or past the end, a
// malformed bytes range, or several ranges (not supported) are
// unsatisfiable; an empty value or another unit means the whole resource.
RangeRequest ParseRange(std::string_view header, uint64_t size);

// "bytes=a-" or "bytes=a-b", for a request.
std::string FormatRange(uint64_t first, std::optional<uint64_t> last);

// "bytes a-b/size", and "bytes */size" for a 416.
std::string FormatContentRange(const ByteRange& r, uint64_t size);
std::string FormatUnsatisfiedRange(uint64_t size);

struct ContentRange {
  ByteRange range;
  std::optional<uint64_t> size;  // nullopt for "bytes a-b/*"
};
// Parses "bytes a-b/size" or "bytes a-b/*"; nullopt when malformed (last <
// first, last >= size, or not the bytes unit).
std::optional<ContentRange> ParseContentRange(std::string_view header);

}  // namespace cm::http
