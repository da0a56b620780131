#include "runners/serve/client_socket.h"

#include <dirent.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>

namespace cb {

namespace {

// The numeric host and port of an address, as httplib writes them into a Request (getnameinfo).
bool host_port(const sockaddr_storage& addr, socklen_t len, std::string& host, int& port) {
  char h[NI_MAXHOST], p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, h, sizeof h, p, sizeof p,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  host = h;
  port = std::atoi(p);
  return true;
}

}  // namespace

ClientSocket ClientSocket::find(const std::string& remote_addr, int remote_port, int local_port) {
  ClientSocket found;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return found;
  while (const dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    struct stat st {};
    if (*end != '\0' || ::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, local{};
    socklen_t peer_len = sizeof peer, local_len = sizeof local;
    std::string host, local_host;
    int port = 0, lport = 0;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 ||
        ::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        !host_port(peer, peer_len, host, port) || !host_port(local, local_len, local_host, lport))
      continue;
    if (port == remote_port && lport == local_port && host == remote_addr) {
      found.fd_ = static_cast<int>(fd);
      break;
    }
  }
  ::closedir(dir);
  return found;
}

bool ClientSocket::gone() const {
  if (fd_ < 0) return false;
  char byte;
  const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace cb
