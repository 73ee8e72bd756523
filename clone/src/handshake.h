// The client side of the authentication (protocol.h), shared by the clone and the probe so
// there is one implementation: connect → TLS (backup.tls) → HELLO(mode) → CHALLENGE →
// RESPONSE → PROOF checked, the MACs bound to the TLS session.
// Internal to clone/.
#ifndef REPLBOOT_CLONE_HANDSHAKE_H_
#define REPLBOOT_CLONE_HANDSHAKE_H_

#include <chrono>
#include <optional>
#include <string>

#include "net.h"
#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/clone/protocol.h"

namespace replboot::clone {

// Connects to `donor` and authenticates both ways; the socket honours options.stop. Each step waits at most
// options.connect_timeout / handshake_timeout, and never past `deadline` when given (the
// probe's overall bound). Afterwards the socket is positioned at the server's first frame
// after PROOF (HEADER for a backup, PROBE_INFO for a probe).
// Errors name the peer: kPermissionDenied "authentication failed at <peer>",
// kUnavailable (refused, busy, closed), kTimeout, kCorruption (not our protocol).
Result<net::Socket> ConnectAuthenticated(
    const Endpoint& donor, HelloMode mode, const CloneOptions& options,
    std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);

// The status for an ERROR frame's payload from `peer`.
Status ServerErrorStatus(const std::string& peer, const std::string& payload);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_HANDSHAKE_H_
