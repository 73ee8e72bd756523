// Choosing a donor: which peer a new replica clones from.
//
// For ordinal n the candidates are, by policy:
//   nearest-lower (default)  n-1, n-2, ..., 0   the closest pod that is up
//   primary                  0                   always the primary
//   any-replica              n-1, ..., 1, then 0 spare the primary: replicas first,
//                                                the primary only as a last resort
// nearest-lower and any-replica try pods in the same order; they differ in when
// the primary may be chosen. nearest-lower takes ordinal 0 in the first round in
// which no replica answers. any-replica keeps it back while replicas might still
// come up: ordinal 0 is only probed when there is no other candidate (node 1) or
// once half the deadline has passed, so that a cluster-wide restart does not send
// every clone to the primary.
//
// Each round resolves every candidate's name (A+AAAA; ports from SRV when
// configured) and probes its backup endpoint in order; the first that answers is
// the donor. When none answers and some failure may heal (the name is not in DNS
// yet, the DNS server failed or timed out, the endpoint refused), the round is
// repeated after a jittered backoff until the deadline, logging each retry with
// its reason. The deadline is checked between lookups: one lookup is bounded by
// the resolver's own timeout x tries.
#ifndef REPLBOOT_DISCOVERY_PEERS_H_
#define REPLBOOT_DISCOVERY_PEERS_H_

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "replboot/base/status.h"
#include "replboot/discovery/prober.h"
#include "replboot/discovery/resolver.h"

namespace replboot::discovery {

enum class Policy { kNearestLower, kPrimary, kAnyReplica };

// "nearest-lower" | "primary" | "any-replica"; kInvalidArgument otherwise.
Result<Policy> ParsePolicy(std::string_view text);
std::string_view PolicyName(Policy policy);

// Ordinals to try for node `ordinal`, most preferred first. Empty for ordinal 0
// (the primary has no donor) and for negative ordinals.
std::vector<int64_t> CandidateOrdinals(int64_t ordinal, Policy policy);

// Candidates of node `<prefix>-<ordinal>` with their DNS names "<prefix>-<k>.<service>".
std::vector<Candidate> Candidates(int64_t ordinal, const std::string& prefix,
                                  const std::string& service, Policy policy);

// The port the SRV records give for `name`: a record whose target is the name
// itself or the name under some domain ("mysql-1.mysql.ns.svc.cluster.local"),
// compared case-insensitively.
std::optional<uint16_t> SrvPortFor(const std::vector<SrvRecord>& records, std::string_view name);

enum class PeerState {
  kNotTried,     // a donor was found before this candidate's turn
  kDnsFailed,    // see dns_failure
  kUnreachable,  // resolved, but no address answered; see detail
  kReachable,    // `answered` answered
  // Answered, but would not serve us and retrying will not change that: the prober said
  // kPermissionDenied (wrong secret) or kInvalidArgument (flavour/version mismatch).
  kRefused,
};
std::string_view PeerStateName(PeerState state);  // "not-tried", "dns-failed", ...

struct PeerReport {
  Candidate candidate;
  std::vector<boost::asio::ip::address> addresses;
  uint16_t port = 0;
  bool port_from_srv = false;
  std::optional<LookupFailure> dns_failure;
  PeerState state = PeerState::kNotTried;
  std::string detail;  // why not reachable, per address
  std::optional<boost::asio::ip::tcp::endpoint> answered;
  int lookups = 0;  // DNS lookups of this name, over all rounds
  // "reachable at 127.0.0.11:3307", "unreachable: ...", "refused: ...", "nxdomain: ..."
  std::string Summary() const;
};

// Index of the donor: the first reachable report, in candidate order.
std::optional<size_t> PickDonor(const std::vector<PeerReport>& reports);

// Retry delays: initial * multiplier^(attempt-1), capped at `max`, with "equal
// jitter" (half fixed, half random) so that replicas started together do not
// query DNS in lockstep.
struct Backoff {
  std::chrono::milliseconds initial{500};
  std::chrono::milliseconds max{5000};
  double multiplier = 2.0;
};
// `attempt` counts from 1; `unit` is a random draw in [0, 1).
std::chrono::milliseconds BackoffDelay(const Backoff& backoff, int attempt, double unit);

struct DiscoverOptions {
  std::vector<Candidate> candidates;
  uint16_t default_port = 3307;                // backup port when SRV gives none
  std::string srv_name;                        // "_backup._tcp.mysql", or "" for no SRV lookup
  std::chrono::milliseconds deadline{300000};  // keep retrying until then
  Backoff backoff;
  // Probe every candidate (for the `peers` table) instead of stopping at the donor.
  bool probe_all = false;
  // Ordinal 0 is not probed before this much time has passed, unless it is the
  // only candidate (any-replica: deadline / 2; otherwise zero).
  std::chrono::milliseconds primary_after{0};
  // One round and no more: no retry, no "no donor" warning (the caller repeats rounds and
  // decides itself, e.g. the primary asking its peers). `deadline` is then unused.
  bool single_round = false;
  // Random draws in [0, 1) for the jitter; a seeded generator when empty.
  std::function<double()> random;
};

struct Discovery {
  std::vector<PeerReport> peers;  // one per candidate, in candidate order
  std::optional<size_t> donor;    // index into peers
  int rounds = 0;
  bool cancelled = false;  // stopped by cancellation (shutdown)
  bool deadline_passed = false;
  const PeerReport* Donor() const { return donor ? &peers[*donor] : nullptr; }
};

// Runs rounds until a donor answers, nothing is worth retrying, the deadline
// passes, or the awaiting coroutine is cancelled (per-operation cancellation,
// e.g. a signal_set emitting on the co_spawn slot). Never throws.
boost::asio::awaitable<Discovery> DiscoverPeers(Resolver& resolver, Prober& prober,
                                                DiscoverOptions options);

// DiscoverPeers for a blocking caller (a bootstrap step on its own thread): runs it on `io`,
// which the resolver and prober use and nobody else runs, until it ends. A stop request
// cancels the lookups, probes and backoff at once, on the loop's thread. nullopt when the
// discovery ended by an exception (it does not throw; this is for safety).
std::optional<Discovery> RunDiscovery(boost::asio::io_context& io, Resolver& resolver,
                                      Prober& prober, const DiscoverOptions& options,
                                      std::stop_token stop);

}  // namespace replboot::discovery

#endif  // REPLBOOT_DISCOVERY_PEERS_H_
