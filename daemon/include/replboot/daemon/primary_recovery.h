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
// The decision (peers in ordinal order; "answered" = an authenticated, well-formed answer):
//
//   peers answering with data                      other peers                   wait     plan
//   ---------------------------------------------  ----------------------------  -------  ----------
//   carry two or more cluster ids                  any                           any      kConflict: never
//                                                                                            initialize, report,
//                                                                                            ask again
//   some, of one cluster id (or, when none has     none in DNS without an        any      kClone from the most
//   an id, a cluster from before ids)              answer, or the wait is over            advanced (its GTID state
//                                                                                            holds the others'; ties
//                                                                                            and divergence: most
//                                                                                            transactions, then the
//                                                                                            lowest ordinal)
//   some                                           in DNS, not answering yet     running  kWait (one of them may
//                                                                                            be further ahead)
//   none                                           none in DNS (NXDOMAIN/NODATA  any      kInitialize at once
//                                                  for every ordinal)                     (day one)
//   none                                           all answered without data     any      kInitialize
//   none                                           in DNS (or DNS failing), no   running  kWait
//                                                  answer yet
//   none                                           as above                      over     kInitialize
// Peers that answer but could never serve the clone (another flavour or version) count as
// not holding data, with the reason logged; id-less peers beside peers with an id are not
// candidates (data of unknown origin).
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

#include "replboot/base/datadir_files.h"
#include "replboot/base/flavour.h"
#include "replboot/base/status.h"
#include "replboot/clone/protocol.h"
#include "replboot/daemon/node_settings.h"
#include "replboot/db/dialect.h"
#include "replboot/replication/health.h"

namespace replboot::daemon {

// What the survey learnt about one peer.
struct PeerFacts {
  int64_t ordinal = 0;
  std::string name;                                // "mysql-1.mysql"
  enum class Dns { kAbsent, kPresent, kUnknown };  // kAbsent: NXDOMAIN/NODATA
  Dns dns = Dns::kUnknown;
  std::optional<clone::ProbeInfo> answer;  // its authenticated answer
  std::string refusal;  // answered, but could never serve a clone (flavour, version)
  std::string detail;   // why it did not answer, or the refusal
};
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
};

// The table above. `peers` in ordinal order; `flavour` reads their GTID states; `wait_over`:
// bootstrap.recover_wait has passed since the first survey. Pure.
RecoveryDecision DecidePrimaryRecovery(const std::vector<PeerFacts>& peers, Flavour flavour,
                                       bool wait_over);

// The file in a recovered datadir that says "promotion not finished": JSON with the donor and
// its GTID state. Reserved (base/datadir_files.h): no stream may bring it.
inline constexpr const auto& kPromotionMarker = datadir_files::kPromotionMarker;
// kPromotionMarker is in `datadir`.
bool PromotionPending(const std::string& datadir);

// The survey → decide → clone loop of a primary with an empty datadir (see above).
struct RecoveryOptions {
  std::chrono::milliseconds recover_wait{60'000};   // bootstrap.recover_wait
  std::chrono::milliseconds round_interval{2'000};  // between surveys while waiting
};
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
