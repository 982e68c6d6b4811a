#include "net/route.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace cm::net {

std::optional<proto::Address> LocalAddressFor(proto::Address dest) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(dest.ip);
  to.sin_port = htons(dest.port);
  sockaddr_in me{};
  socklen_t len = sizeof me;
  // connect() on a UDP socket only picks the route and the source address.
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
            getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len) == 0;
  close(fd);
  if (!ok) return std::nullopt;
  return proto::Address{ntohl(me.sin_addr.s_addr), dest.port};
}

}  // namespace cm::net
