#include "net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace replboot::clone::net {

Socket::Socket(Socket&& other) noexcept : fd_(other.fd_), peer_(std::move(other.peer_)) {
  other.fd_ = -1;
}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.fd_;
    peer_ = std::move(other.peer_);
    other.fd_ = -1;
  }
  return *this;
}

Socket::~Socket() { Close(); }

void Socket::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status Socket::WaitFor(short events, std::chrono::milliseconds timeout, std::string_view what) {
  pollfd p{fd_, events, 0};
  for (;;) {
    int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoStatus(errno, fmt::format("poll on connection to {}", peer_));
    if (rc == 0) {
      return Status(StatusCode::kTimeout,
                    fmt::format("{} {}: no progress for {} ms", what, peer_, timeout.count()));
    }
    return Status::Ok();
  }
}

Status Socket::WriteAll(std::string_view data, std::chrono::milliseconds timeout) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      Status s = WaitFor(POLLOUT, timeout, "sending to");
      if (!s.ok()) return s;
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET) {
      return Status(StatusCode::kUnavailable,
                    fmt::format("connection to {} closed by the peer", peer_));
    }
    return ErrnoStatus(errno, fmt::format("send to {}", peer_));
  }
  return Status::Ok();
}

Result<size_t> Socket::ReadSome(void* buffer, size_t size, std::chrono::milliseconds timeout) {
  for (;;) {
    ssize_t n = ::recv(fd_, buffer, size, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      Status s = WaitFor(POLLIN, timeout, "waiting for data from");
      if (!s.ok()) return Error(s);
      continue;
    }
    if (errno == ECONNRESET) {
      return Error(StatusCode::kUnavailable, "connection reset by {}", peer_);
    }
    return Error(ErrnoStatus(errno, fmt::format("recv from {}", peer_)));
  }
}

Status Socket::ReadExact(void* buffer, size_t size, std::chrono::milliseconds timeout) {
  auto* out = static_cast<char*>(buffer);
  size_t done = 0;
  while (done < size) {
    auto n = ReadSome(out + done, size - done, timeout);
    if (!n) return n.error();
    if (*n == 0) {
      return Status(StatusCode::kUnavailable, fmt::format("connection closed by {}", peer_));
    }
    done += *n;
  }
  return Status::Ok();
}

Status Socket::WriteFrame(FrameType type, std::string_view payload,
                          std::chrono::milliseconds timeout) {
  return WriteAll(EncodeFrame(type, payload), timeout);
}

Result<Socket::Frame> Socket::ReadControlFrame(std::chrono::milliseconds timeout) {
  std::array<uint8_t, kFrameHeaderSize> raw;
  Status s = ReadExact(raw.data(), raw.size(), timeout);
  if (!s.ok()) return Error(s);
  auto header = DecodeFrameHeader(raw);
  if (!header) return Error(header.error().WithContext(fmt::format("from {}", peer_)));
  if (header->type == FrameType::kData) {
    return Error(StatusCode::kCorruption, "unexpected DATA frame from {} during the handshake",
                 peer_);
  }
  Frame frame{header->type, std::string(header->length, '\0')};
  s = ReadExact(frame.payload.data(), frame.payload.size(), timeout);
  if (!s.ok()) return Error(s);
  return frame;
}

Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view text, uint16_t default_port,
                                                       bool allow_zero) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return Error(StatusCode::kInvalidArgument, "bad address {:?}", text);
    host = std::string(text.substr(1, close - 1));
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':')
        return Error(StatusCode::kInvalidArgument, "bad address {:?}", text);
      port_text = text.substr(close + 2);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') == colon) {
      host = std::string(text.substr(0, colon));
      port_text = text.substr(colon + 1);
    } else {
      host = std::string(text);
    }
  }
  uint16_t port = default_port;
  if (!port_text.empty()) {
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() ||
        (port == 0 && !allow_zero)) {
      return Error(StatusCode::kInvalidArgument, "bad port in {:?}", text);
    }
  }
  if (host.empty()) return Error(StatusCode::kInvalidArgument, "no host in {:?}", text);
  return std::make_pair(host, port);
}

std::string PeerName(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "unknown";
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<sockaddr*>(&addr), len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "unknown";
  }
  return addr.ss_family == AF_INET6 ? fmt::format("[{}]:{}", host, serv)
                                    : fmt::format("{}:{}", host, serv);
}

Result<Socket> Connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  std::string peer = host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port)
                                                         : fmt::format("{}:{}", host, port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  addrinfo* list = nullptr;
  std::string port_text = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &list);
  if (rc != 0)
    return Error(StatusCode::kUnavailable, "cannot resolve {}: {}", host, gai_strerror(rc));
  Status last(StatusCode::kUnavailable, fmt::format("no address for {}", host));
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last = ErrnoStatus(errno, "socket");
      continue;
    }
    Socket sock(fd, peer);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last = Status(StatusCode::kUnavailable,
                    fmt::format("connect to {}: {}", peer, std::strerror(errno)));
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int prc;
    do {
      prc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (prc < 0 && errno == EINTR);
    if (prc == 0) {
      last = Status(StatusCode::kTimeout,
                    fmt::format("connect to {}: no answer in {} ms", peer, timeout.count()));
      continue;
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      last = Status(StatusCode::kUnavailable,
                    fmt::format("connect to {}: {}", peer, std::strerror(err)));
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::freeaddrinfo(list);
    return sock;
  }
  ::freeaddrinfo(list);
  return Error(last);
}

}  // namespace replboot::clone::net
