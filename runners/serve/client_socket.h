// Whether the HTTP client of a request is still there. cpp-httplib 0.11 gives a handler no handle on
// its connection, so the socket is found by the request's TCP addresses among the process's open
// descriptors. The handler's thread owns that socket and keeps it open while the handler (or its
// stream) runs, which is the only time the check is made.
#pragma once
#include <string>

namespace cb {

class ClientSocket {
 public:
  // The connected socket whose peer is remote_addr:remote_port and whose local port is local_port (as
  // httplib::Request holds them); none found: gone() is always false.
  static ClientSocket find(const std::string& remote_addr, int remote_port, int local_port);

  // The peer has closed or reset the connection (a pipelined request or no data yet both mean it has
  // not). A look without reading: the server's next read still sees every byte.
  bool gone() const;

 private:
  int fd_ = -1;
};

}  // namespace cb
