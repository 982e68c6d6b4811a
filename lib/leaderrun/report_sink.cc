// cm-leader report-sink: what a CCM's listener receives, on stdout. Plain
// blocking sockets: one connection at a time, each read to its end.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "leaderrun/run.h"
#include "util/log.h"

namespace cm::leaderrun {

Code ReportSink(proto::Address listen) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return log::Error(ErrnoError("report-sink: socket", errno)), Code::kFailure;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(listen.ip);
  sa.sin_port = htons(listen.port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    return log::Error(ErrnoError("report-sink: " + listen.ToString(), e)), Code::kFailure;
  }
  for (;;) {
    int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      int e = errno;
      close(fd);
      return log::Error(ErrnoError("report-sink: accept", e)), Code::kFailure;
    }
    char buf[65536];
    for (;;) {  // until the leader closes
      ssize_t n = read(c, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::fwrite(buf, 1, static_cast<size_t>(n), stdout);
    }
    std::fflush(stdout);
    close(c);
  }
}

}  // namespace cm::leaderrun
