#include "handshake.h"

#include <algorithm>
#include <cstring>

namespace replboot::clone {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// `step`, shortened to what is left before `deadline` (at least 1 ms, so that poll()
// still reports a timeout rather than blocking).
milliseconds Bounded(milliseconds step, const std::optional<Clock::time_point>& deadline) {
  if (!deadline) return step;
  auto left = std::chrono::duration_cast<milliseconds>(*deadline - Clock::now());
  return std::clamp(left, milliseconds(1), step);
}

}  // namespace

Status ServerErrorStatus(const std::string& peer, const std::string& payload) {
  ErrorMessage e = DecodeErrorMessage(payload);
  if (e.code == "auth_failed")
    return Status(StatusCode::kPermissionDenied, fmt::format("authentication failed at {}", peer));
  if (e.code == "tls_required") {
    return Status(StatusCode::kUnavailable,
                  fmt::format("{} expects TLS (backup.tls = true there) but backup.tls is false "
                              "here: {}",
                              peer, e.message));
  }
  if (e.code == "busy")
    return Status(StatusCode::kUnavailable, fmt::format("{} is busy: {}", peer, e.message));
  return Status(StatusCode::kUnavailable,
                fmt::format("{} refused the {} ({}): {}", peer,
                            e.code == "protocol" ? "connection" : "backup", e.code, e.message));
}

Result<net::Socket> ConnectAuthenticated(const Endpoint& donor, HelloMode mode,
                                         const CloneOptions& options,
                                         std::optional<Clock::time_point> deadline) {
  auto sock = net::Connect(donor, Bounded(options.connect_timeout, deadline), options.stop);
  if (!sock) return Error(sock.error());
  const std::string peer = sock->peer();
  auto hs = [&] { return Bounded(options.handshake_timeout, deadline); };
  if (options.tls.enabled) {
    std::shared_ptr<const net::TlsContext> context = options.tls_context;
    if (!context) {
      auto created = net::TlsContext::Create(options.tls, net::TlsContext::Role::kClient);
      if (!created) return Error(created.error());
      context = std::move(*created);
    }
    if (Status s = sock->StartTls(*context, hs()); !s.ok()) {
      if (s.code() == StatusCode::kPermissionDenied) return Error(s);
      // A plaintext server closes on seeing a ClientHello (it logs "speaks TLS").
      return Error(s.code(), "{} (is backup.tls = true on {} too?)", s.message(), peer);
    }
  }
  auto binding = sock->ChannelBinding();
  if (!binding) return Error(binding.error());

  if (Status s = sock->WriteFrame(FrameType::kHello, EncodeHello(mode), hs()); !s.ok())
    return Error(s);
  auto challenge = sock->ReadControlFrame(hs());
  if (!challenge) return Error(challenge.error());
  if (challenge->type == FrameType::kError) return Error(ServerErrorStatus(peer, challenge->payload));
  if (challenge->type != FrameType::kChallenge || challenge->payload.size() != kNonceSize) {
    return Error(StatusCode::kCorruption, "{} sent {} instead of a challenge", peer,
                 FrameTypeName(challenge->type));
  }
  Nonce server_nonce;
  std::memcpy(server_nonce.data(), challenge->payload.data(), kNonceSize);
  auto client_nonce = RandomNonce();
  if (!client_nonce) return Error(client_nonce.error());
  Mac mac = ClientMac(options.secret, server_nonce, *client_nonce, *binding);
  std::string response(reinterpret_cast<const char*>(mac.data()), mac.size());
  response.append(reinterpret_cast<const char*>(client_nonce->data()), client_nonce->size());
  if (Status s = sock->WriteFrame(FrameType::kResponse, response, hs()); !s.ok()) return Error(s);
  auto proof = sock->ReadControlFrame(hs());
  if (!proof) {
    // A server that closes right after our response without an ERROR frame is an old or
    // odd server; treat it like a refusal but keep the cause.
    return Error(proof.error().WithContext(fmt::format("authenticating to {}", peer)));
  }
  if (proof->type == FrameType::kError) return Error(ServerErrorStatus(peer, proof->payload));
  Mac expected = ServerMac(options.secret, *client_nonce, server_nonce, *binding);
  if (proof->type != FrameType::kProof ||
      !MacEqual(expected, std::span(reinterpret_cast<const uint8_t*>(proof->payload.data()),
                                    proof->payload.size()))) {
    // The donor does not know the secret (or, over TLS, is not at the other end of our TLS
    // session: channel binding): never take a datadir from it.
    return Error(StatusCode::kPermissionDenied,
                 "authentication failed at {}: the server's proof is wrong", peer);
  }
  return std::move(*sock);
}

}  // namespace replboot::clone
