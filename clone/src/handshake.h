// Both sides of the authentication (protocol.h), one implementation each: the client's
// (shared by the clone and the probe: connect → TLS (backup.tls) → HELLO(mode) → CHALLENGE
// → RESPONSE → PROOF checked) and the server's. Afterwards the server tags every frame it
// sends and the client checks every frame it reads, with the session's stream key.
// Internal to clone/.
#ifndef REPLBOOT_CLONE_HANDSHAKE_H_
#define REPLBOOT_CLONE_HANDSHAKE_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net.h"
#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/clone/protocol.h"

namespace replboot::clone {

// A connection the handshake authenticated, and the node it proved to be.
struct AuthenticatedConnection {
  net::Socket socket;
  NodeIdentity server;  // from its CHALLENGE, covered by its PROOF
  // The compression the HELLO asked for (options.compress for a backup, off for a probe or
  // after a donor refused the version 4 HELLO), which the HEADER's grant must answer.
  CompressRequest asked;
};

// Connects to `donor` and authenticates both ways; the socket honours options.stop. Each step
// waits at most options.connect_timeout / handshake_timeout, and never past `deadline` when
// given (the probe's overall bound). The HELLO names this node (options.client_name and
// client_ordinal). Afterwards the socket is positioned at the server's first frame after
// PROOF (HEADER for a backup, PROBE_INFO for a probe).
// Errors name the peer: kPermissionDenied "authentication failed at <peer>", or "<peer>
// answered as mysql-2 (ordinal 2), not as ordinal 1" when options.expected_ordinal is set and
// the server states another identity (refused before the RESPONSE: it starts nothing);
// A backup asks for options.compress in a version 4 HELLO; a donor that refuses that version
// (ERROR protocol: it predates it) is asked again, once, with a version 3 HELLO and no
// compression (logged as event=clone_protocol_fallback).
// kUnavailable (refused, busy, closed), kTimeout, kCorruption (not our protocol, or a
// malformed CHALLENGE).
// With mode kResume, `resume` rides in a version 4 HELLO with options.compress (protocol.h,
// "Why resume"); an ERROR protocol to it is not retried (the caller clones afresh).
Result<AuthenticatedConnection> ConnectAuthenticated(
    const Endpoint& donor, HelloMode mode, const CloneOptions& options,
    std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt,
    const std::optional<ResumeRequest>& resume = std::nullopt);

struct AcceptedClient {
  HelloMode mode = HelloMode::kBackup;
  std::string name;  // the client's name from its HELLO, "" when it sent none
  std::optional<int64_t> ordinal;  // the client's ordinal from its HELLO, when it sent one
  uint16_t version = kMinProtocolVersion;
  CompressRequest compress;  // what it asked for (off from a version 3 client)
  std::optional<ResumeRequest> resume;  // mode kResume: what it asks to resume
};
// The server side on an accepted (non-blocking) socket: TLS when `tls` is set, HELLO,
// CHALLENGE (naming this node as `self`), RESPONSE checked, PROOF. The whole exchange ends by
// `deadline`, however slowly the bytes arrive. Sends the ERROR frame the protocol asks for
// (tls_required, protocol, auth_failed) before failing; kPermissionDenied means a wrong MAC. On
// success the socket tags every frame it sends from then on.
Result<AcceptedClient> AcceptAuthenticated(net::Socket& sock, std::string_view secret,
                                           const NodeIdentity& self, const net::TlsContext* tls,
                                           std::chrono::steady_clock::time_point deadline);

// The status for an ERROR frame's payload from `peer`.
Status ServerErrorStatus(const std::string& peer, const std::string& payload);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_HANDSHAKE_H_
