// Blocking socket helpers with per-call deadlines (poll), shared by the backup server's
// session threads and the clone client. Internal to clone/.
#ifndef REPLBOOT_CLONE_NET_H_
#define REPLBOOT_CLONE_NET_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"

namespace replboot::clone::net {

// Owns a socket descriptor; closes it on destruction.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}
  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();

  int fd() const { return fd_; }
  const std::string& peer() const { return peer_; }
  void Close();

  // Writes all of `data` within `timeout` of idleness; kUnavailable when the peer is gone.
  Status WriteAll(std::string_view data, std::chrono::milliseconds timeout);
  // Reads exactly `size` bytes; kUnavailable on EOF ("connection closed by <peer>").
  Status ReadExact(void* buffer, size_t size, std::chrono::milliseconds timeout);
  // Reads whatever is available (at least 1 byte); 0 means orderly EOF.
  Result<size_t> ReadSome(void* buffer, size_t size, std::chrono::milliseconds timeout);

  // Control frames only (bounded by kMaxControlPayload).
  Status WriteFrame(FrameType type, std::string_view payload, std::chrono::milliseconds timeout);
  struct Frame {
    FrameType type;
    std::string payload;
  };
  Result<Frame> ReadControlFrame(std::chrono::milliseconds timeout);

 private:
  Status WaitFor(short events, std::chrono::milliseconds timeout, std::string_view what);
  int fd_ = -1;
  std::string peer_;
};

// "host:port" / "[v6]:port" / "host" (default port) → host and port. Port 0 (any free
// port) only when `allow_zero`, for listening.
Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view text, uint16_t default_port,
                                                       bool allow_zero = false);

// Resolves and connects (non-blocking connect with a deadline), then sets the socket
// non-blocking: every later call waits with poll().
Result<Socket> Connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);

std::string PeerName(int fd);

}  // namespace replboot::clone::net

#endif  // REPLBOOT_CLONE_NET_H_
