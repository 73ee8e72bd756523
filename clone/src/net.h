// Blocking socket helpers with per-call deadlines (poll), shared by the backup server's
// session threads and the clone client, optionally over TLS (OpenSSL on the same
// non-blocking descriptor: SSL_ERROR_WANT_READ/WRITE wait in the same poll), and the
// tagged frames (protocol.h, since version 2). Internal to clone/.
//
// SIGPIPE: plaintext sends use MSG_NOSIGNAL; OpenSSL writes with write(2), so every SSL_*
// call runs with SIGPIPE blocked in the calling thread and a SIGPIPE it raised is consumed
// (sigtimedwait) before the mask is restored. The process's signal dispositions are never
// touched: a library must not change them under its host.
#ifndef REPLBOOT_CLONE_NET_H_
#define REPLBOOT_CLONE_NET_H_

#include <openssl/ssl.h>

#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <optional>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"
#include "replboot/clone/tls.h"

namespace replboot::clone::net {

// An SSL_CTX for one side of the backup connection: TLS 1.2 at least (1.3 when both
// have it), our certificate and key, and peer verification when a CA is configured.
// Shared by every connection of that side (SSL_CTX is thread-safe for SSL_new).
class TlsContext {
 public:
  enum class Role { kClient, kServer };
  // kInvalidArgument naming the file when a certificate, key or CA cannot be loaded.
  static Result<std::shared_ptr<const TlsContext>> Create(const TlsOptions& options, Role role);
  SSL_CTX* get() const { return ctx_.get(); }
  Role role() const { return role_; }

 private:
  TlsContext(SSL_CTX* ctx, Role role) : ctx_(ctx, &SSL_CTX_free), role_(role) {}
  std::unique_ptr<SSL_CTX, void (*)(SSL_CTX*)> ctx_;
  Role role_;
};

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
  bool tls() const { return ssl_ != nullptr; }
  void Close();

  // Every later wait gives up with kCancelled within half a second of a stop request on
  // `stop` (a server shutting down, replboot stopping mid-clone).
  void SetStop(std::stop_token stop) { stop_ = std::move(stop); }

  // Every later wait also ends (kTimeout) at `deadline`, however the bytes trickle in: one
  // bound for a whole exchange such as the handshake. nullopt removes it.
  void SetDeadline(std::optional<std::chrono::steady_clock::time_point> deadline) {
    deadline_ = deadline;
  }

  // Called every half second or so while a wait gets nothing (e.g. to report a stall);
  // must not use this socket. An empty function removes it.
  void SetIdleHook(std::function<void()> hook) { idle_hook_ = std::move(hook); }

  // The first byte the peer sent, without consuming it (plaintext only): tells a TLS
  // ClientHello (kTlsHandshakeRecord) from a HELLO frame.
  Result<uint8_t> PeekByte(std::chrono::milliseconds timeout);

  // The TLS handshake on this connected socket, as `context`'s role; afterwards every
  // read and write goes through TLS. Errors: "TLS handshake with <peer> failed: ..."
  // (kPermissionDenied when the peer's certificate did not verify, kTimeout, otherwise
  // kUnavailable).
  Status StartTls(const TlsContext& context, std::chrono::milliseconds timeout);

  // The channel binding (protocol.h): kChannelBindingSize bytes exported from the TLS
  // session under kTlsExporterLabel; empty without TLS.
  Result<std::vector<uint8_t>> ChannelBinding() const;

  // Writes all of `data` within `timeout` of the call, however the peer paces its reads
  // (kTimeout naming the size); kUnavailable when the peer is gone.
  Status WriteAll(std::string_view data, std::chrono::milliseconds timeout);
  // Reads exactly `size` bytes; kUnavailable on EOF ("connection closed by <peer>").
  Status ReadExact(void* buffer, size_t size, std::chrono::milliseconds timeout);
  // Reads whatever is available (at least 1 byte); 0 means orderly EOF.
  Result<size_t> ReadSome(void* buffer, size_t size, std::chrono::milliseconds timeout);

  // From now on every frame written carries a tag from `auth` (protocol.h, "Why tags").
  void TagSentFrames(FrameAuthenticator auth) { send_auth_.emplace(std::move(auth)); }
  // From now on every frame read must carry the right tag, else the read fails with
  // kPermissionDenied naming the peer and the frame.
  void CheckReceivedFrames(FrameAuthenticator auth) { recv_auth_.emplace(std::move(auth)); }
  // Frames whose tag was checked so far.
  uint64_t frames_checked() const { return recv_auth_ ? recv_auth_->frames() : 0; }
  // The tag of the last frame ReadFrame checked (the resume chain goes over them).
  const Tag& last_tag() const { return last_tag_; }

  // A control frame (bounded by kMaxControlPayload), tagged when TagSentFrames was called.
  Status WriteFrame(FrameType type, std::string_view payload, std::chrono::milliseconds timeout);
  // A frame assembled in place, sent with one write: `buffer` holds kFrameHeaderSize bytes
  // of room, then `payload_size` payload bytes, then kTagSize bytes of room; the header and
  // (when tagging) the tag are filled in here.
  Status WriteFrameBuffer(FrameType type, std::vector<uint8_t>& buffer, size_t payload_size,
                          std::chrono::milliseconds timeout);
  struct Frame {
    FrameType type;
    std::string payload;
  };
  Result<Frame> ReadControlFrame(std::chrono::milliseconds timeout);
  // Any frame (DATA only with `allow_data`) into `payload`, its tag checked when
  // CheckReceivedFrames was called: the payload is returned only once it is proven.
  Result<FrameType> ReadFrame(std::vector<uint8_t>& payload, std::chrono::milliseconds timeout,
                              bool allow_data);

 private:
  friend Result<Socket> Connect(const boost::asio::ip::tcp::endpoint&, std::chrono::milliseconds,
                                std::stop_token);
  Status WaitFor(short events, std::chrono::milliseconds timeout, std::string_view what);
  // After a failed SSL_* call returning `rc`: Ok to retry (after waiting as asked), or why not.
  Status TlsRetry(int rc, std::chrono::milliseconds timeout, std::string_view what);
  int fd_ = -1;
  std::string peer_;
  SSL* ssl_ = nullptr;
  std::stop_token stop_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::function<void()> idle_hook_;
  std::optional<FrameAuthenticator> send_auth_;
  std::optional<FrameAuthenticator> recv_auth_;
  Tag last_tag_{};
};

// "host:port" / "[v6]:port" / "host" (default port) → host and port. Port 0 (any free
// port) only when `allow_zero`, for listening.
Result<std::pair<std::string, uint16_t>> SplitHostPort(std::string_view text, uint16_t default_port,
                                                       bool allow_zero = false);

// Connects (non-blocking, every later call waits with poll()) within `timeout` (kTimeout), or until a stop request on `stop` (kCancelled), which
// the socket keeps watching afterwards.
Result<Socket> Connect(const boost::asio::ip::tcp::endpoint& endpoint,
                       std::chrono::milliseconds timeout, std::stop_token stop = {});

std::string PeerName(int fd);

// The OpenSSL error queue of this thread as one line (and cleared), "" when empty.
std::string TlsErrors();

}  // namespace replboot::clone::net

#endif  // REPLBOOT_CLONE_NET_H_
