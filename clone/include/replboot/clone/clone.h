// The replica side of a clone: fetch a donor's backup stream, unpack it while it
// arrives into <datadir>.replboot-staging, check it is whole, prepare it, commit it.
//
//   connect → authenticate (mutual) → header → pre-flight (flavour/version, free space)
//   → receive + extract (progress every few seconds) → trailer + completeness checks
//   → `<tool> --prepare` → chown, fsync → the donor's cluster id (cluster_id.h) →
//   before_commit → commit marker (fsynced) → swap into place (datadir.h)
//
// Any failure before the marker discards the staging dir; the datadir is untouched.
#ifndef REPLBOOT_CLONE_CLONE_H_
#define REPLBOOT_CLONE_CLONE_H_

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"
#include "replboot/clone/tls.h"

namespace replboot::clone {

// A donor's backup endpoint, as discovery found it (address and port, no name to resolve).
using Endpoint = boost::asio::ip::tcp::endpoint;

// What a clone is doing, for the node's /status (the daemon maps it onto the HTTP view).
struct CloneProgressEvent {
  // "discovering" (a round of discovery and probes), "streaming", "preparing", "committing",
  // then "done"; "failed" after an attempt failed (a retry follows unless it was the last).
  std::string phase;
  std::string donor;  // address:port of the current or last attempt
  uint64_t bytes = 0;
  uint64_t estimated_bytes = 0;  // the donor's estimate; 0 unknown
  double bytes_per_second = 0;     // 0 while stalled
  std::optional<double> eta_seconds;  // none while stalled
  // Set while streaming when no byte has arrived for kStallAfter or more: how long.
  std::optional<double> stalled_seconds;
  int attempt = 0;    // attempts started by CloneFromPeers (0 for a lone CloneFrom)
  // The donor's backup run (from its HEADER; 0 before it or from a donor that does not say)
  // and the receivers it started with: more than 1 means a backup shared with others.
  uint64_t donor_run = 0;
  uint64_t donor_run_receivers = 0;
  // What the donor granted ("off", "zstd:1", "auto:3"; "" before its HEADER) and the DATA and
  // ZDATA payload bytes that arrived for `bytes` stream bytes.
  std::string compression;
  uint64_t wire_bytes = 0;
  std::string error;  // the last failed attempt's error
};
using CloneProgressCallback = std::function<void(const CloneProgressEvent&)>;
// No byte for this long while streaming: the progress says "stalled for N s".
inline constexpr std::chrono::seconds kStallAfter{2};

struct FileOwner {
  uid_t uid = 0;
  gid_t gid = 0;
};

struct CloneOptions {
  std::string datadir;
  std::string secret;               // never logged
  Flavour flavour = Flavour::kMariaDB;  // the local server's flavour
  std::string tool;                     // local backup tool; "" = by flavour
  std::string use_memory = "1G";    // --use-memory for --prepare
  TlsOptions tls;                   // backup.tls*: TLS to the donor
  // Built once from `tls` (MakeTlsContext) and shared by every attempt and probe; when null,
  // each connection loads `tls` itself.
  std::shared_ptr<const net::TlsContext> tls_context;
  // The prepared files are handed to mysqld's user (replboot runs as root); nullopt: kept as
  // they are (replboot runs as that user already).
  std::optional<FileOwner> owner;
  bool force_reclone = false;       // replace an existing datadir (kept aside until commit)
  bool check_free_space = true;
  // The pre-flight needs estimated_bytes × margin free next to the datadir: the estimate
  // counts what the donor's tool streams (no binary or relay logs); the 5 % covers the redo
  // log's tail and what --prepare adds.
  double space_margin = 1.05;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds handshake_timeout{15'000};
  std::chrono::milliseconds idle_timeout{300'000};  // no byte from the donor
  std::chrono::milliseconds progress_interval{5'000};  // log lines
  // Called from the cloning thread at each phase and every `progress_report_interval` while
  // streaming; must be cheap and must not throw.
  CloneProgressCallback on_progress;
  std::chrono::milliseconds progress_report_interval{500};
  // Received bytes queued for the unpacking thread at most (it waits for the disk), in
  // buffers of kMaxDataPayload: the receiver's stream memory is this plus two such buffers
  // (extract.h). Measured with `replboot clone` of a 2.6 GiB stream (4.66 GiB sysbench
  // datadir) on the shared 2-core machine, load average 9-12, two runs each:
  //   cap      peak RSS (VmHWM)   stream seconds
  //    2 MiB      15.6 MiB        13.7  20.5
  //    4 MiB      17.9 MiB        16.6  10.7
  //    8 MiB      21.9 MiB        13.9  10.0
  //   16 MiB      30.0 MiB        12.5  12.7
  //   32 MiB      46.5 MiB        19.7  11.3
  //   (64 MiB, before: 31 MiB when the disk kept up, cap + 14 MiB when it did not)
  // Under load the queue fills to its cap; below 8 MiB the stream waited for the disk more
  // often, above it no run was faster while 16 MiB already leaves `replboot run` (3 MiB more
  // than `replboot clone`) too little room under its 32 MiB target: 8 MiB is the knee.
  size_t pipeline_bytes = 8u << 20;
  // A stop request (replboot shutting down) ends the clone in any phase: connect, handshake,
  // stream (within half a second), prepare (the tool's process group is ended), backoff.
  std::stop_token stop;
  // More names a donor's stream must not contain at its top; the node's own files
  // (base/datadir_files.h) are always refused.
  std::vector<std::string> reserved_names;
  // How this node names itself to the donor in HELLO (its logs say who is cloning); "" = the
  // host name. Its ordinal, when it has one (`replboot clone` by hand has none).
  std::string client_name;
  std::optional<int64_t> client_ordinal;
  // The ordinal the node at the other end must prove (protocol.h, "Why a transcript"): set,
  // a server that states another ordinal, or none, is refused with kPermissionDenied naming
  // both. Discovery sets it per candidate, the clone per chosen donor; unset: any node with
  // the secret will do (`replboot clone --from`).
  std::optional<int64_t> expected_ordinal;
  // Runs after --prepare, once the staging dir is synced and holds the donor's cluster id,
  // right before the commit marker: files the node needs with this clone go in here, so a
  // committed clone always has them. An error fails the attempt (the staging dir is
  // discarded). Unset: nothing.
  std::function<Status(const std::string& staging, const StreamHeader& header)> before_commit;
  // The donor check (DonorRefusal, Preflight): a donor must say it is ready (set up,
  // replicating within its lag bound, or a ready primary) and not diverged, or its problem
  // (errant transactions, a source that purged what it needs) would come with the clone.
  // Off only for a primary that lost its volume: its peers cannot be ready without it.
  bool require_ready_donor = true;
  // When set (a re-clone: the datadir's own id), a donor of another cluster is refused.
  std::string expected_cluster_id;
  // backup.compress: what this receiver asks the donor for (protocol.h, "Compression on the
  // wire"); off sends the version 3 HELLO every donor takes.
  CompressRequest compress;
};

struct CloneResult {
  std::string donor;
  NodeIdentity donor_node;  // who the donor's handshake proved to be
  std::string datadir;
  StreamHeader header;
  uint64_t bytes = 0;
  uint64_t wire_bytes = 0;     // what arrived for `bytes` (compressed, when granted)
  double fetch_seconds = 0;    // connect → stream extracted and checked
  double prepare_seconds = 0;  // --prepare
  double commit_seconds = 0;   // marker, chown, swap
};

// One attempt from `peer`, into a clean slate: the caller has settled the datadir's state
// first (the daemon's decision table; `replboot clone` the same way), so a staging dir left
// here is an error, not something to recover. No retries. Errors name the peer:
// kPermissionDenied "authentication failed at <peer>", kUnavailable for busy / unreachable
// / a donor that died mid-stream, kCorruption for a bad stream, kNoSpace "no space left".
Result<CloneResult> CloneFrom(const Endpoint& peer, const CloneOptions& options);

// An authenticated probe of `peer` (protocol.h, mode probe): the same mutual
// authentication as CloneFrom, then the donor's flavour, server version and load; the
// donor starts nothing. Bounded by `timeout` overall. Ok only when a clone from it could
// start now: kPermissionDenied "authentication failed at <peer>", kUnavailable when it is
// busy, unreachable or its server does not answer, kTimeout, kInvalidArgument when its
// flavour or major.minor version does not match the local backup tool (the pre-flight).
Result<ProbeInfo> ProbeDonor(const Endpoint& peer, const CloneOptions& options,
                             std::chrono::milliseconds timeout);

// The same probe, returning whatever the peer answered (busy, its server down, another
// version: see DonorRefusal): a primary that lost its datadir asks every peer for its place
// in the cluster whether or not it could serve a clone right now. Errors only when there is
// no authenticated, well-formed answer: kPermissionDenied, kUnavailable, kTimeout,
// kCorruption.
Result<ProbeInfo> ProbePeer(const Endpoint& peer, const CloneOptions& options,
                            std::chrono::milliseconds timeout);

// Why a peer that answered `info` could not serve a clone now (ProbeDonor's checks: its
// error, busy, the donor check of options.require_ready_donor (ready, not diverged) and
// options.expected_cluster_id, flavour and major.minor version against the local tool); Ok
// when it could. kInvalidArgument for another cluster or version (retrying will not help),
// kUnavailable otherwise.
Status DonorRefusal(const std::string& peer, const ProbeInfo& info, const CloneOptions& options);

// Tries `peers` in order (nearest first), each failure discarding the staging dir, with
// exponential backoff between rounds (1 s doubling to `max_backoff`). A peer that refused
// authentication is skipped for the next `auth_skip_rounds` rounds so a wrong secret never
// turns into a tight loop. Stops after `max_rounds` rounds (0 = until cancelled) or on
// kNoSpace / kInvalidArgument (not fixed by retrying).
struct RetryPolicy {
  int max_rounds = 0;
  std::chrono::milliseconds first_backoff{1'000};
  std::chrono::milliseconds max_backoff{60'000};
  int auth_skip_rounds = 3;
};
// A donor to try: its backup endpoint and, when discovery knows it, the ordinal of the node
// behind it, which that attempt then expects (CloneOptions::expected_ordinal).
struct DonorEndpoint {
  Endpoint endpoint;
  std::optional<int64_t> ordinal;
};
Result<CloneResult> CloneFromPeers(const std::function<std::vector<DonorEndpoint>()>& peers,
                                   const CloneOptions& options, const RetryPolicy& policy);

// "mariabackup" or "xtrabackup" when options.tool is empty.
std::string LocalTool(const CloneOptions& options);

}  // namespace replboot::clone

#endif  // REPLBOOT_CLONE_CLONE_H_
