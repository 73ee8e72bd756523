#include "net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <utility>

#include "replboot/base/log.h"

namespace replboot::clone::net {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// SIGPIPE blocked in this thread while OpenSSL may write (see net.h); a SIGPIPE raised
// meanwhile is consumed, one that was already pending before is left alone.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old_);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
  }
  ~SigpipeBlock() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        const timespec zero{0, 0};
        int rc;
        do {
          rc = sigtimedwait(&pipe, nullptr, &zero);
        } while (rc < 0 && errno == EINTR);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_;
  bool was_pending_ = false;
};

}  // namespace

std::string TlsErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

Result<std::shared_ptr<const TlsContext>> TlsContext::Create(const TlsOptions& options,
                                                             Role role) {
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(role == Role::kServer ? TLS_server_method() : TLS_client_method());
  if (raw == nullptr) return Error(StatusCode::kInternal, "SSL_CTX_new: {}", TlsErrors());
  std::shared_ptr<const TlsContext> context(new TlsContext(raw, role));
  auto fail = [&](std::string_view key, const std::string& path) {
    return Error(StatusCode::kInvalidArgument, "backup.{} {}: {}", key, log::Printable(path), TlsErrors());
  };
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  // A peer vanishing without close_notify is an EOF like on a plain socket; the protocol's
  // TRAILER, not TLS, says whether a stream is whole.
  SSL_CTX_set_options(raw, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_NO_TICKET);
  // WriteAll retries with the rest of its buffer after WANT_WRITE.
  SSL_CTX_set_mode(raw, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // One connection per clone: no resumption, so no tickets sent after the handshake.
  SSL_CTX_set_num_tickets(raw, 0);
  if (SSL_CTX_use_certificate_chain_file(raw, options.cert.c_str()) != 1)
    return fail("tls_cert", options.cert);
  if (SSL_CTX_use_PrivateKey_file(raw, options.key.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("tls_key", options.key);
  if (SSL_CTX_check_private_key(raw) != 1) return fail("tls_key", options.key);
  if (!options.ca.empty()) {
    if (SSL_CTX_load_verify_locations(raw, options.ca.c_str(), nullptr) != 1)
      return fail("tls_ca", options.ca);
    int mode = SSL_VERIFY_PEER;
    if (role == Role::kServer) {
      mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.ca.c_str());
      if (names != nullptr) SSL_CTX_set_client_CA_list(raw, names);
    }
    SSL_CTX_set_verify(raw, mode, nullptr);
  } else {
    SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
  }
  return context;
}

Socket::Socket(Socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      peer_(std::move(other.peer_)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      stop_(std::move(other.stop_)),
      send_auth_(std::move(other.send_auth_)),
      recv_auth_(std::move(other.recv_auth_)) {}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.fd_;
    peer_ = std::move(other.peer_);
    ssl_ = other.ssl_;
    stop_ = std::move(other.stop_);
    send_auth_ = std::move(other.send_auth_);
    recv_auth_ = std::move(other.recv_auth_);
    other.fd_ = -1;
    other.ssl_ = nullptr;
  }
  return *this;
}

Socket::~Socket() { Close(); }

void Socket::Close() {
  if (ssl_ != nullptr) {
    // Best effort close_notify; never waits (the descriptor is non-blocking).
    if (SSL_is_init_finished(ssl_)) {
      SigpipeBlock no_sigpipe;
      (void)SSL_shutdown(ssl_);
    }
    SSL_free(ssl_);
    ERR_clear_error();
    ssl_ = nullptr;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status Socket::WaitFor(short events, milliseconds timeout, std::string_view what) {
  pollfd p{fd_, events, 0};
  const auto idle_deadline = Clock::now() + timeout;
  const bool bounded = deadline_ && *deadline_ < idle_deadline;
  const auto deadline = bounded ? *deadline_ : idle_deadline;
  for (;;) {
    // Slices of at most 500 ms when a stop can be requested, so a stop is never held up.
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left < milliseconds(0)) left = milliseconds(0);
    auto slice = stop_.stop_possible() || idle_hook_ ? std::min(left, milliseconds(500)) : left;
    int rc = ::poll(&p, 1, static_cast<int>(slice.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return ErrnoStatus(errno, fmt::format("poll on connection to {}", peer_));
    if (rc > 0) return Status::Ok();
    if (stop_.stop_requested()) {
      return Status(StatusCode::kCancelled, fmt::format("{} {}: cancelled", what, peer_));
    }
    if (idle_hook_) idle_hook_();
    if (Clock::now() >= deadline) {
      if (bounded) {
        return Status(StatusCode::kTimeout,
                      fmt::format("{} {}: the exchange's deadline passed", what, peer_));
      }
      return Status(StatusCode::kTimeout,
                    fmt::format("{} {}: no progress for {} ms", what, peer_, timeout.count()));
    }
  }
}

Result<uint8_t> Socket::PeekByte(milliseconds timeout) {
  for (;;) {
    uint8_t byte = 0;
    ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK);
    if (n == 1) return byte;
    if (n == 0) return Error(StatusCode::kUnavailable, "connection closed by {}", peer_);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      Status s = WaitFor(POLLIN, timeout, "waiting for data from");
      if (!s.ok()) return Error(s);
      continue;
    }
    return Error(ErrnoStatus(errno, fmt::format("recv from {}", peer_)));
  }
}

Status Socket::TlsRetry(int rc, milliseconds timeout, std::string_view what) {
  int err = SSL_get_error(ssl_, rc);
  int saved_errno = errno;
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return WaitFor(POLLIN, timeout, what);
    case SSL_ERROR_WANT_WRITE:
      return WaitFor(POLLOUT, timeout, what);
    case SSL_ERROR_ZERO_RETURN:
      return Status(StatusCode::kUnavailable, fmt::format("connection closed by {}", peer_));
    case SSL_ERROR_SYSCALL: {
      std::string queue = TlsErrors();
      if (!queue.empty()) break;
      if (saved_errno == 0 || saved_errno == EPIPE || saved_errno == ECONNRESET) {
        return Status(StatusCode::kUnavailable,
                      fmt::format("connection to {} closed by the peer", peer_));
      }
      return ErrnoStatus(saved_errno, fmt::format("{} {}", what, peer_));
    }
    default:
      break;
  }
  return Status(StatusCode::kUnavailable, fmt::format("{} {}: TLS error: {}", what, peer_,
                                                      TlsErrors()));
}

Status Socket::StartTls(const TlsContext& context, milliseconds timeout) {
  ERR_clear_error();
  ssl_ = SSL_new(context.get());
  if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
    return Status(StatusCode::kInternal, fmt::format("SSL_new: {}", TlsErrors()));
  }
  if (context.role() == TlsContext::Role::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
  SigpipeBlock no_sigpipe;
  for (;;) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) return Status::Ok();
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      Status s = WaitFor(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, timeout,
                         "TLS handshake with");
      if (!s.ok()) return s;
      continue;
    }
    int saved_errno = errno;
    std::string reason = TlsErrors();
    StatusCode code = StatusCode::kUnavailable;
    long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      code = StatusCode::kPermissionDenied;
      reason += fmt::format("{}{}'s certificate: {}", reason.empty() ? "" : "; ", peer_,
                            X509_verify_cert_error_string(verify));
    } else if (reason.find("alert") != std::string::npos &&
               (reason.find("certificate") != std::string::npos ||
                reason.find("unknown ca") != std::string::npos)) {
      code = StatusCode::kPermissionDenied;  // the peer refused our certificate
    }
    if (reason.empty()) {
      reason = saved_errno == 0 || saved_errno == ECONNRESET || saved_errno == EPIPE
                   ? "connection closed by the peer"
                   : std::strerror(saved_errno);
    }
    return Status(code, fmt::format("TLS handshake with {} failed: {}", peer_, reason));
  }
}

Result<std::vector<uint8_t>> Socket::ChannelBinding() const {
  if (ssl_ == nullptr) return std::vector<uint8_t>();
  std::vector<uint8_t> out(kChannelBindingSize);
  if (SSL_export_keying_material(ssl_, out.data(), out.size(), kTlsExporterLabel.data(),
                                 kTlsExporterLabel.size(), nullptr, 0, 0) != 1) {
    return Error(StatusCode::kInternal, "TLS exporter for {}: {}", peer_, TlsErrors());
  }
  return out;
}

Status Socket::WriteAll(std::string_view data, milliseconds timeout) {
  // One deadline for the whole write: a peer that takes a byte now and then must not hold
  // the sender (and whatever it holds, the donor's backup slot) longer than `timeout`.
  const auto write_deadline = Clock::now() + timeout;
  auto wait = [&](auto&& waiter) -> Status {
    auto left = std::chrono::duration_cast<milliseconds>(write_deadline - Clock::now());
    Status s = left > milliseconds(0)
                   ? waiter(left)
                   : Status(StatusCode::kTimeout, "");
    if (s.code() == StatusCode::kTimeout &&
        s.message().find("the exchange's deadline") == std::string::npos) {
      return Status(StatusCode::kTimeout,
                    fmt::format("sending to {}: {} bytes not all taken within {} ms", peer_,
                                data.size(), timeout.count()));
    }
    return s;
  };
  if (ssl_ != nullptr) {
    SigpipeBlock no_sigpipe;
    size_t done = 0;
    while (done < data.size()) {
      ERR_clear_error();
      errno = 0;
      int n = SSL_write(ssl_, data.data() + done,
                        static_cast<int>(std::min<size_t>(data.size() - done, INT_MAX)));
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      if (Status s = wait([&](milliseconds left) { return TlsRetry(n, left, "sending to"); });
          !s.ok())
        return s;
    }
    return Status::Ok();
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      Status s = wait([&](milliseconds left) { return WaitFor(POLLOUT, left, "sending to"); });
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
  if (ssl_ != nullptr) {
    SigpipeBlock no_sigpipe;  // SSL_read may answer a KeyUpdate
    for (;;) {
      ERR_clear_error();
      errno = 0;
      int n = SSL_read(ssl_, buffer, static_cast<int>(std::min<size_t>(size, INT_MAX)));
      if (n > 0) return static_cast<size_t>(n);
      if (SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN) return size_t{0};  // close_notify
      if (Status s = TlsRetry(n, timeout, "waiting for data from"); !s.ok()) return Error(s);
    }
  }
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
  std::vector<uint8_t> buffer(kFrameHeaderSize + payload.size() + kTagSize);
  std::memcpy(buffer.data() + kFrameHeaderSize, payload.data(), payload.size());
  return WriteFrameBuffer(type, buffer, payload.size(), timeout);
}

Status Socket::WriteFrameBuffer(FrameType type, std::vector<uint8_t>& buffer, size_t payload_size,
                                std::chrono::milliseconds timeout) {
  if (buffer.size() < kFrameHeaderSize + payload_size + kTagSize || payload_size > UINT32_MAX) {
    return Status(StatusCode::kInternal, "frame buffer too small");
  }
  auto header = EncodeFrameHeader(type, static_cast<uint32_t>(payload_size));
  std::memcpy(buffer.data(), header.data(), header.size());
  size_t size = kFrameHeaderSize + payload_size;
  if (send_auth_) {
    auto tag = send_auth_->Seal(type, std::span(buffer.data() + kFrameHeaderSize, payload_size));
    if (!tag) return tag.error();
    std::memcpy(buffer.data() + size, tag->data(), tag->size());
    size += tag->size();
  }
  return WriteAll(std::string_view(reinterpret_cast<const char*>(buffer.data()), size), timeout);
}

Result<FrameType> Socket::ReadFrame(std::vector<uint8_t>& payload, std::chrono::milliseconds timeout,
                                    bool allow_data) {
  std::array<uint8_t, kFrameHeaderSize> raw;
  Status s = ReadExact(raw.data(), raw.size(), timeout);
  if (!s.ok()) return Error(s);
  auto header = DecodeFrameHeader(raw);
  if (!header) return Error(header.error().WithContext(fmt::format("from {}", peer_)));
  if ((header->type == FrameType::kData || header->type == FrameType::kZData) && !allow_data) {
    return Error(StatusCode::kCorruption, "unexpected {} frame from {} during the handshake",
                 FrameTypeName(header->type), peer_);
  }
  payload.resize(header->length);
  s = ReadExact(payload.data(), payload.size(), timeout);
  if (!s.ok()) return Error(s);
  if (recv_auth_) {
    Tag tag;
    s = ReadExact(tag.data(), tag.size(), timeout);
    if (!s.ok()) return Error(s);
    s = recv_auth_->Check(header->type, payload, tag);
    if (!s.ok()) {
      return Error(s.code(), "{} from {} failed authentication: the sender does not hold the "
                   "secret, or the stream was altered on the way",
                   s.message(), peer_);
    }
    last_tag_ = tag;
  }
  return header->type;
}

Result<Socket::Frame> Socket::ReadControlFrame(std::chrono::milliseconds timeout) {
  std::vector<uint8_t> payload;
  auto type = ReadFrame(payload, timeout, /*allow_data=*/false);
  if (!type) return Error(type.error());
  return Frame{*type, std::string(payload.begin(), payload.end())};
}

Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view text, uint16_t default_port,
                                                       bool allow_zero) {
  std::string host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return Error(StatusCode::kInvalidArgument, "bad address {}", log::Printable(text));
    host = std::string(text.substr(1, close - 1));
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':')
        return Error(StatusCode::kInvalidArgument, "bad address {}", log::Printable(text));
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
      return Error(StatusCode::kInvalidArgument, "bad port in {}", log::Printable(text));
    }
  }
  if (host.empty()) return Error(StatusCode::kInvalidArgument, "no host in {}", log::Printable(text));
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

Result<Socket> Connect(const boost::asio::ip::tcp::endpoint& endpoint,
                       std::chrono::milliseconds timeout, std::stop_token stop) {
  const std::string peer = endpoint.address().is_v6()
                               ? fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port())
                               : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
  int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error(ErrnoStatus(errno, "socket"));
  Socket sock(fd, peer);
  sock.SetStop(std::move(stop));
  if (::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0 &&
      errno != EINPROGRESS) {
    return Error(StatusCode::kUnavailable, "connect to {}: {}", peer, std::strerror(errno));
  }
  if (Status s = sock.WaitFor(POLLOUT, timeout, "connect to"); !s.ok()) {
    if (s.code() == StatusCode::kTimeout)
      return Error(StatusCode::kTimeout, "connect to {}: no answer in {} ms", peer,
                   timeout.count());
    return Error(s);
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) return Error(StatusCode::kUnavailable, "connect to {}: {}", peer, std::strerror(err));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return sock;
}

}  // namespace replboot::clone::net

namespace replboot::clone {

Result<std::shared_ptr<const net::TlsContext>> MakeTlsContext(const TlsOptions& options,
                                                              TlsSide side) {
  return net::TlsContext::Create(options, side == TlsSide::kServer
                                              ? net::TlsContext::Role::kServer
                                              : net::TlsContext::Role::kClient);
}

}  // namespace replboot::clone
