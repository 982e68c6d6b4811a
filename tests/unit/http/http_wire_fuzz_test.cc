// Runs the HTTP parser fuzz target's body (lib/http/http_wire_fuzz.cc) on
// seeded mutations of valid requests and responses, split at every kind of
// point. The properties are the body's: no crash, consumption within the
// input, a split never changes the outcome, and a route's lowered body limit
// is never exceeded.
#include <gtest/gtest.h>

#include <random>
#include <string>

int CmFuzzHttpWire(const uint8_t* data, size_t size);

namespace {

TEST(HttpWireFuzz, RandomMutationsKeepTheParsersTotalAndSplitInvariant) {
  const std::string bases[] = {
      "GET /v1/content/7 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-255\r\n\r\n",
      "POST /v1/fetch HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"serial\":7,\"x\":123}",
      "POST /v1/fetch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n" + std::string(80, 'b') +
          "\r\n0\r\n\r\n",
      "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-3/10\r\nContent-Length: 4\r\n\r\nabcd",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
  };
  std::mt19937 rng(1111);
  int complete = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string m = bases[iter % 5];
    int edits = static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !m.empty(); ++e) {
      size_t at = rng() % m.size();
      switch (rng() % 4) {
        case 0: m[at] = static_cast<char>(rng()); break;
        case 1: m.resize(at); break;
        case 2: m.insert(at, std::string(1 + rng() % 8, static_cast<char>("0123456789:\r\n "[rng() % 15]))); break;
        case 3: m.erase(at, 1 + rng() % 8); break;
      }
    }
    std::string in(1, static_cast<char>(rng()));
    in += m;
    if (rng() % 2) in += 'x';  // odd and even sizes: with and without a lowered body limit
    complete += CmFuzzHttpWire(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  }
  EXPECT_EQ(complete, 20000);
}

}  // namespace
