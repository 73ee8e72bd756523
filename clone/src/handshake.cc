#include "handshake.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "replboot/base/log.h"
#include "replboot/discovery/prober.h"

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

// How this node names itself in HELLO: options.client_name, else the host name (in a
// StatefulSet, the pod's name, e.g. mysql-2).
std::string ClientName(const CloneOptions& options) {
  if (!options.client_name.empty()) return options.client_name;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) return "";
  return host;
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

namespace {

Result<AuthenticatedConnection> ConnectOnce(const Endpoint& donor, HelloMode mode,
                                            const CompressRequest& compress,
                                            const CloneOptions& options,
                                            std::optional<Clock::time_point> deadline,
                                            bool* refused_version,
                                            const std::optional<ResumeRequest>& resume) {
  auto sock = net::Connect(donor, Bounded(options.connect_timeout, deadline), options.stop);
  if (!sock) return Error(sock.error());
  const std::string peer = sock->peer();
  // One bound for the whole handshake, however slowly a donor answers.
  const auto handshake_deadline = Clock::now() + options.handshake_timeout;
  sock->SetDeadline(deadline ? std::min(*deadline, handshake_deadline) : handshake_deadline);
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

  const std::string hello =
      EncodeHello(mode, NodeIdentity{ClientName(options), options.client_ordinal}, compress,
                  resume);
  if (Status s = sock->WriteFrame(FrameType::kHello, hello, hs()); !s.ok()) return Error(s);
  auto challenge_frame = sock->ReadControlFrame(hs());
  if (!challenge_frame) return Error(challenge_frame.error());
  if (challenge_frame->type == FrameType::kError) {
    *refused_version = DecodeErrorMessage(challenge_frame->payload).code == "protocol";
    return Error(ServerErrorStatus(peer, challenge_frame->payload));
  }
  if (challenge_frame->type != FrameType::kChallenge) {
    return Error(StatusCode::kCorruption, "{} sent {} instead of a challenge", peer,
                 FrameTypeName(challenge_frame->type));
  }
  auto challenge = ParseChallenge(challenge_frame->payload);
  if (!challenge) return Error(challenge.error().WithContext(fmt::format("from {}", peer)));
  // Before the RESPONSE, so that the wrong node never gets as far as starting a backup. The
  // claim is not authenticated yet, but only a matching one can go on, and the PROOF below
  // covers it: a relay that rewrote it fails there.
  if (options.expected_ordinal && challenge->server.ordinal != options.expected_ordinal) {
    return Error(StatusCode::kPermissionDenied, "{} answered as {}, not as ordinal {}", peer,
                 NodeIdentityText(challenge->server), *options.expected_ordinal);
  }
  auto client_nonce = RandomNonce();
  if (!client_nonce) return Error(client_nonce.error());
  const Transcript transcript{hello, challenge_frame->payload, *client_nonce, *binding};
  Mac mac = ClientMac(options.secret, transcript);
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
  Mac expected = ServerMac(options.secret, transcript);
  if (proof->type != FrameType::kProof ||
      !MacEqual(expected, std::span(reinterpret_cast<const uint8_t*>(proof->payload.data()),
                                    proof->payload.size()))) {
    // The donor does not know the secret, or saw another HELLO or sent another CHALLENGE
    // than we did (a relay changed one), or, over TLS, is not at the other end of our TLS
    // session (channel binding): never take a datadir from it.
    return Error(StatusCode::kPermissionDenied,
                 "authentication failed at {}: the server's proof is wrong", peer);
  }
  auto auth = FrameAuthenticator::Create(DeriveStreamKey(options.secret, transcript));
  if (!auth) return Error(auth.error());
  sock->CheckReceivedFrames(std::move(*auth));
  sock->SetDeadline(std::nullopt);
  return AuthenticatedConnection{std::move(*sock), std::move(challenge->server), compress};
}

}  // namespace

Result<AuthenticatedConnection> ConnectAuthenticated(const Endpoint& donor, HelloMode mode,
                                                     const CloneOptions& options,
                                                     std::optional<Clock::time_point> deadline,
                                                     const std::optional<ResumeRequest>& resume) {
  // A resume asks for the same compression as a backup: the run's grant must answer it.
  const CompressRequest compress =
      mode == HelloMode::kBackup || mode == HelloMode::kResume ? options.compress : CompressRequest{};
  bool refused_version = false;
  auto connection =
      ConnectOnce(donor, mode, compress, options, deadline, &refused_version, resume);
  if (connection || !refused_version || compress.mode == CompressMode::kOff) return connection;
  // A resume is never retried as version 3 (it has no resume): a donor that predates it holds
  // no run of ours, and the caller clones afresh.
  if (mode == HelloMode::kResume) return connection;
  // A donor from before version 4: the same, without compression (protocol.h, "Versions").
  log::Get("clone")->info("event=clone_protocol_fallback peer={} asked={} reason={}",
                          discovery::EndpointText(donor), CompressRequestText(compress),
                          log::Quote(connection.error().message()));
  refused_version = false;
  return ConnectOnce(donor, mode, CompressRequest{}, options, deadline, &refused_version,
                     std::nullopt);
}

}  // namespace replboot::clone

namespace replboot::clone {

Result<AcceptedClient> AcceptAuthenticated(net::Socket& sock, std::string_view secret,
                                           const NodeIdentity& self, const net::TlsContext* tls,
                                           Clock::time_point deadline) {
  const std::string& peer = sock.peer();
  sock.SetDeadline(deadline);
  // Each step may wait for what is left; the socket's deadline is the real bound.
  auto left = [&] {
    return std::max(milliseconds(1),
                    std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
  };
  // A refusal the client is told about; the socket closes with the caller.
  auto refuse = [&](std::string_view code, const std::string& message, StatusCode status,
                    const std::string& why) -> Status {
    (void)sock.WriteFrame(FrameType::kError, EncodeErrorMessage({std::string(code), message}),
                          left());
    return Status(status, why);
  };

  // --- TLS, or not: both sides must agree, and a mismatch is named on the side that sees it
  auto first = sock.PeekByte(left());
  if (!first) return Error(first.error());
  if (tls != nullptr) {
    if (*first == static_cast<uint8_t>(FrameType::kHello)) {
      return Error(refuse("tls_required", "this server requires TLS (backup.tls = true)",
                          StatusCode::kUnavailable,
                          fmt::format("peer {} speaks plaintext but backup.tls is true", peer)));
    }
    if (Status s = sock.StartTls(*tls, left()); !s.ok()) return Error(s);
  } else if (*first == kTlsHandshakeRecord) {
    return Error(StatusCode::kUnavailable, "peer {} speaks TLS but backup.tls is false", peer);
  }
  auto binding = sock.ChannelBinding();
  if (!binding) return Error(binding.error());

  auto hello_frame = sock.ReadControlFrame(left());
  if (!hello_frame) return Error(hello_frame.error());
  if (hello_frame->type != FrameType::kHello) {
    return Error(StatusCode::kCorruption, "expected HELLO from {}, got {}", peer,
                 FrameTypeName(hello_frame->type));
  }
  auto hello = ParseHello(hello_frame->payload);
  if (!hello) {
    if (hello.error().code() == StatusCode::kInvalidArgument) {
      return Error(refuse("protocol", hello.error().message(), StatusCode::kInvalidArgument,
                          hello.error().message()));
    }
    return Error(hello.error());
  }
  auto server_nonce = RandomNonce();
  if (!server_nonce) return Error(server_nonce.error());
  const std::string challenge = EncodeChallenge(*server_nonce, self);
  if (Status s = sock.WriteFrame(FrameType::kChallenge, challenge, left()); !s.ok())
    return Error(s);
  auto response = sock.ReadControlFrame(left());
  if (!response) return Error(response.error());
  if (response->type != FrameType::kResponse || response->payload.size() != kMacSize + kNonceSize) {
    return Error(StatusCode::kCorruption, "malformed RESPONSE from {}", peer);
  }
  Nonce client_nonce;
  std::memcpy(client_nonce.data(), response->payload.data() + kMacSize, kNonceSize);
  // The HELLO as it arrived: if anybody changed it on the way, the client's MAC (over what
  // it sent) does not verify.
  const Transcript transcript{hello_frame->payload, challenge, client_nonce, *binding};
  Mac expected = ClientMac(secret, transcript);
  auto given = std::span(reinterpret_cast<const uint8_t*>(response->payload.data()), kMacSize);
  if (!MacEqual(expected, given)) {
    return Error(refuse("auth_failed", "authentication failed", StatusCode::kPermissionDenied,
                        fmt::format("authentication failed for {}", peer)));
  }
  Mac proof = ServerMac(secret, transcript);
  if (Status s = sock.WriteFrame(
          FrameType::kProof, std::string_view(reinterpret_cast<const char*>(proof.data()), kMacSize),
          left());
      !s.ok()) {
    return Error(s);
  }
  auto auth = FrameAuthenticator::Create(DeriveStreamKey(secret, transcript));
  if (!auth) return Error(auth.error());
  sock.TagSentFrames(std::move(*auth));
  sock.SetDeadline(std::nullopt);
  return AcceptedClient{hello->mode, std::move(hello->client.name), hello->client.ordinal,
                        hello->version, hello->compress, hello->resume};
}

}  // namespace replboot::clone
