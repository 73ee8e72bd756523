// A primary whose datadir is empty asks its peers before it initializes (the bootstrap
// table's kAskPeers row): a lost volume must not turn into an empty writable primary while
// the replicas hold every row.
//
//   survey: resolve <prefix>-1.<service>, <prefix>-2... (until kScanGap names after the
//           highest one in DNS are absent), probe each with the authenticated hello, which
//           answers its cluster id, whether it holds data, its role and GTID state
//   decide: DecidePrimaryRecovery (the table below, pure)
//   clone:  from the chosen peer into staging; before the commit marker the donor is asked
//           again, and a GTID state that moved during the clone fails the attempt; the
//           promotion marker (kPromotionMarker: the donor's GTID state) goes in with the clone
//   start:  mysqld with --read-only and an init file (PromotionInitSql) while the marker is
//           there: before any client can connect it forgets the inherited source (RESET
//           SLAVE ALL) and makes the new binlog continue the donor's GTID history, so the
//           replicas go on replicating without a re-clone; FinishPromotion checks that,
//           removes the marker and turns read_only off. A kill before that repeats it.
//
// clang-format off
// The decision fails closed: an empty database is initialized only when this can be told to
// be a new cluster. Peers in ordinal order; a peer's answer "settles" it when it is
// authenticated, well formed and without an error; an unsettled peer is one of (the token
// /status, /metrics and the log give):
//   not_in_dns_yet      absent from DNS while a higher ordinal is there (a StatefulSet has no
//                       holes: its pod is being recreated)
//   dns_failing         DNS fails or times out for its name
//   silent              in DNS, but no answer: refused, timed out, reset (down, flooded,
//                       not scheduled, a firewall)
//   refused_our_secret  it answered, but our secret does not authenticate (a rotation half
//                       done): it may hold every row
//   answered_error      authenticated, but its server cannot say what it holds (backup user
//                       missing or locked, max_connections, mysqld stopped for a re-clone)
//   cannot_serve        holds data but could never serve our clone (another flavour/version)
//
//   peers answering with data                 other peers                         wait  plan
//   ----------------------------------------  ----------------------------------  ----  ------------
//   (any: the operator wrote the override file, kInitializeEmptyPhrase)                  kInitialize,
//                                                                                         once (the file
//                                                                                         is consumed)
//   carry two or more cluster ids             any                                 any   kConflict: report,
//                                                                                         ask again
//   some, of one cluster id (or, when none    settled or cannot_serve, or the     any   kClone the most
//   has an id, a cluster from before ids)     wait is over                              advanced by what it
//                                                                                         executed (binlog
//                                                                                         state ∪ current
//                                                                                         position; ties and
//                                                                                         divergence: most
//                                                                                         transactions, then
//                                                                                         the lowest ordinal)
//   some                                      some unsettled (not cannot_serve)   no    kWait (one may be
//                                                                                         further ahead)
//   none                                      none in DNS (NXDOMAIN/NODATA for    any   kInitialize at once
//                                             every ordinal)                            (day one)
//   none                                      all settled: answered, no data      any   kInitialize
//   none                                      any unsettled                       any   kWait, for as long
//                                                                                         as it takes
// Id-less peers beside peers with an id are not candidates (data of unknown origin).
// clang-format on
#ifndef REPLBOOT_DAEMON_PRIMARY_RECOVERY_H_
#define REPLBOOT_DAEMON_PRIMARY_RECOVERY_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "replboot/base/datadir_files.h"
#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/db/dialect.h"
#include "replboot/replication/gtid.h"
#include "replboot/replication/health.h"

namespace replboot::daemon {

// What the survey learnt about one peer.
struct PeerFacts {
  int64_t ordinal = 0;
  std::string name;                                // "mysql-1.mysql"
  enum class Dns { kAbsent, kPresent, kUnknown };  // kAbsent: NXDOMAIN/NODATA
  Dns dns = Dns::kUnknown;
  std::optional<clone::ProbeInfo> answer;  // its authenticated answer
  bool auth_refused = false;  // it answered, but refused our secret (or we its proof)
  std::string refusal;  // answered, but could never serve a clone (flavour, version)
  std::string detail;   // why it did not answer, or the refusal
};

// The token why `peer` leaves the decision open (the table above), "" when its answer
// settles it. `highest_in_dns`: the highest ordinal of the survey found in DNS.
std::string_view UnsettledReason(const PeerFacts& peer, Flavour flavour, int64_t highest_in_dns);

// What a peer executed, for ranking: MariaDB's binlog state ∪ current position, MySQL's
// gtid_executed. An error for a GTID text that is not of the flavour.
Result<replication::GtidSet> ExecutedGtids(const clone::ProbeInfo& answer, Flavour flavour);
std::string_view PeerDnsName(PeerFacts::Dns dns);  // "absent" | "present" | "unknown"

enum class RecoveryPlan { kInitialize, kClone, kWait, kConflict };
std::string_view RecoveryPlanName(RecoveryPlan plan);  // "initialize", "clone", ...

struct RecoveryDecision {
  RecoveryPlan plan = RecoveryPlan::kWait;
  std::optional<size_t> donor;  // index into the peers (kClone)
  // A stable token for logs and /status: no_peers_in_dns, peers_without_data,
  // no_data_within_wait, waiting_for_peers, most_advanced_peer, clusters_conflict.
  std::string reason;
  std::string detail;  // the same in words, naming the peers
  // kWait, kConflict: the unsettled peers and why (the tokens above).
  std::vector<replication::BootstrapStatus::View::WaitingPeer> waiting_for;
};

// The table above. `peers` in ordinal order; `flavour` reads their GTID states; `wait_over`:
// bootstrap.recover_wait has passed since the first survey; `initialize_override`: the
// operator's override file says kInitializeEmptyPhrase. Pure.
RecoveryDecision DecidePrimaryRecovery(const std::vector<PeerFacts>& peers, Flavour flavour,
                                       bool wait_over, bool initialize_override = false);

// The operator's way out of a wait that cannot end on its own (the peers' data is known to
// be lost or unwanted): a file <datadir>.replboot-initialize-empty (beside the datadir, on
// the same volume, so a lost datadir does not lose it and an empty datadir stays empty)
// holding exactly this phrase. Read at every survey round; removed (and the removal made
// durable) before the initialization starts, so it acts once.
inline constexpr char kInitializeEmptySuffix[] = ".replboot-initialize-empty";
inline constexpr char kInitializeEmptyPhrase[] = "initialize empty, discarding the peers' data";
std::string InitializeEmptyOverridePath(const std::string& datadir);

// The file in a recovered datadir that says "promotion not finished": JSON with the donor and
// its GTID state. Reserved (base/datadir_files.h): no stream may bring it.
inline constexpr const auto& kPromotionMarker = datadir_files::kPromotionMarker;
// kPromotionMarker is in `datadir`.
bool PromotionPending(const std::string& datadir);
// Writes the marker into a staging dir before its commit: `source` (a peer's name, or
// "backup <id>"), the GTID state the new binlog must continue, the cluster id; handed to
// `owner` when set, the directory fsynced. `extra` adds fields (the donor's ordinal).
Status WritePromotionMarker(const std::string& staging, const std::string& source,
                            const std::string& gtid_state, const std::string& cluster_id,
                            const std::optional<OsUser>& owner,
                            const nlohmann::json& extra = nlohmann::json::object());

// The survey → decide → clone loop of a primary with an empty datadir (see above).
struct RecoveryOptions {
  std::chrono::milliseconds recover_wait{60'000};   // bootstrap.recover_wait
  std::chrono::milliseconds round_interval{2'000};  // between surveys while waiting
  // [archive] configured: where the table says "initialize" (but not on the operator's
  // override), the store is asked first. A text: the store's backup of this cluster, and the
  // archived binlog up to restore.target, are committed in the datadir with the promotion
  // marker (the text says what was restored, for /status: plan "restore"); nullopt: the store
  // holds no backup (a new cluster: initialize); an error fails closed: logged, shown in
  // /status (plan "wait"), and asked again after StoreRetryDelay. kInvalidArgument is the
  // store refusing what is asked of it (restore.target outside the restorable range, backups
  // of several clusters and none named, another flavour): reason restore_refused; any other
  // (unreachable, denied, a bad object) is store_unanswered.
  std::function<Result<std::optional<std::string>>(std::stop_token)> restore_from_store;
  // A store that keeps failing is asked less often: the wait doubles from round_interval up
  // to this (a restore that fails late has downloaded the whole backup each time). Peers are
  // still surveyed before every attempt, so one that comes back is seen at once.
  std::chrono::milliseconds store_retry_max{60'000};
};
// The pause after the `failures`-th failure in a row to restore from the store:
// round_interval, doubling, capped at store_retry_max.
std::chrono::milliseconds StoreRetryDelay(const RecoveryOptions& options, int failures);
// For /status: the last decision (plan, reason, detail, donor, rounds, seconds waited).
using RecoveryView = replication::BootstrapStatus::View;
// Ok(true): a clone of this cluster's most advanced peer is committed in the datadir, with
// the promotion marker; Ok(false): initialize an empty database. kCancelled on `stop`.
// `on_decision` sees every decision; `on_progress` the clone's.
Result<bool> RecoverPrimary(const NodeSettings& settings, const RecoveryOptions& options,
                            std::stop_token stop,
                            const std::function<void(const RecoveryView&)>& on_decision,
                            const clone::CloneProgressCallback& on_progress);

// The --init-file of the first start of a recovered datadir (nullopt without the marker):
// forget the inherited source (RESET SLAVE ALL) and make the new binlog continue the donor's
// GTID history (PromotionStatements). An init file runs before mysqld accepts any client, so
// no replica can ask for its position while the binlog does not have it yet (it would stop
// with error 1236 for good).
Result<std::optional<std::string>> PromotionInitSql(const NodeSettings& settings);
// Its statements for `dialect`; `gtid_state` from the marker.
std::vector<std::string> PromotionStatements(const db::Dialect& dialect,
                                             const std::string& gtid_state);

// Once mysqld accepts connections, when PromotionPending (mysqld runs with --read-only): as
// root over the socket, checks the binlog continues the donor's state, removes the marker,
// then read_only off.
Status FinishPromotion(const NodeSettings& settings);

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_PRIMARY_RECOVERY_H_
