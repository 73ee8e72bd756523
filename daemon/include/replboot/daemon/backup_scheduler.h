// Scheduled backups inside `replboot run` (archive.schedule): every node runs a scheduler
// once its mysqld is ready, and for each slot of the schedule (archive/schedule.h: the same
// slots and ids on every node) at most one node takes the backup, from its own backup server,
// into the store of [archive].
//
// Who takes a slot (DecideTurn, pure):
//
//   this node                     may try the slot from (after the slot's start)
//   not ready (/ready 503)        never: its data may be stale or half set up
//   replica, the turn holder      at once. The holder of slot k is the replica at place
//                                 k mod n of the n replicas in DNS, sorted by ordinal (this
//                                 one included): the replicas take turns, slot after slot
//   replica, p places after it    p × archive.claim_step: each next replica in ordinal order
//                                 (wrapping) covers a turn holder that is down or failing
//   primary                       n × claim_step, and only if then it sees no ready replica
//                                 (probes of their backup servers); at once when DNS holds no
//                                 replica (a one-node cluster). The primary serves the writes:
//                                 it backs up only when no replica can
//
// Whatever the turns say, the claim decides (archive/catalog.h ClaimBackup: claims/<id>
// written only if absent, so of nodes racing for one id exactly one wins): a node that finds
// the slot's backup complete, or claimed by another live taker, moves on.
//
// A failed attempt (the store unreachable, cut, 403/500, full; the source failing; the taker
// killed) leaves no manifest, so the catalog lists it as incomplete, never as a backup. The
// slot is tried again within its window (until the next slot starts) under the next attempt
// id (archive/schedule.h SlotAttemptId: the slot's next second), after archive.retry_backoff
// (doubling); the claim of a failed attempt is never reused, so it blocks nothing
// (DecideSlot, pure):
//
//   the slot's attempts in the store                      this node
//   one has a manifest                                    done (its own, or another's)
//   the last claim is this node's (it failed, or this     take the next attempt (its claim is
//     node was restarted since)                           dead: a node runs one at a time)
//   the last claim is another node's, younger than        busy: wait, and look again
//     archive.claim_timeout
//   the last claim is older than claim_timeout            take the next attempt (its taker is
//                                                         taken for dead)
//   no claim                                              take attempt 0
//   every attempt id used                                 give the slot up; the next proceeds
//
// A taker that outlives its claim_timeout checks before its manifest that no later attempt of
// its slot was claimed, and gives up if one was (before_manifest), so a slot still gets one
// backup. After a backup (read back whole: verified) the retention runs (PruneBackups).
//
// Surfaces: api::Server::archive_status() (/status "archive", /metrics replboot_backup_*), the
// log (event=scheduled_backup_* and TakeBackup's backup_progress with its ETA).
#ifndef REPLBOOT_DAEMON_BACKUP_SCHEDULER_H_
#define REPLBOOT_DAEMON_BACKUP_SCHEDULER_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "replboot/api/server.h"
#include "replboot/archive/schedule.h"
#include "replboot/base/status.h"
#include "replboot/clone/clone.h"
#include "replboot/daemon/node_settings.h"

namespace replboot::daemon {

// --- the who-takes rule (pure) ---------------------------------------------------------

struct TurnInput {
  int64_t slot_index = 0;  // archive::SlotIndex
  int64_t ordinal = 0;     // this node's
  bool primary = false;
  bool ready = false;  // this node
  // Ordinals of the replicas in DNS (this node's is added when it is a replica), and of those
  // the ones whose backup server said ready when probed.
  std::vector<int64_t> replicas;
  std::vector<int64_t> ready_replicas;
  std::chrono::seconds step{30};  // archive.claim_step
};

struct Turn {
  bool may_try = false;
  std::chrono::seconds after{0};  // from the slot's start, when may_try
  int64_t holder = -1;            // the turn holder's ordinal; -1 when DNS holds no replica
  // In words, for /status and the log: "turn holder mysql-2; this node 2nd, from +30s".
  std::string reason;
};
Turn DecideTurn(const TurnInput& input);

// --- a slot's state in the store (pure) ------------------------------------------------

struct AttemptState {
  int attempt = 0;
  std::string id;  // archive::SlotAttemptId
  bool claimed = false;
  std::string node;  // the claim's taker
  int64_t claimed_at_ms = 0;
  bool has_manifest = false;
};

struct SlotDecision {
  enum class Action { kTake, kDone, kBusy, kExhausted };
  Action action = Action::kTake;
  int attempt = 0;   // kTake: the attempt to claim; kDone/kBusy: the attempt seen
  std::string node;  // kDone/kBusy: whose
  std::string reason;
};
// `attempts`: the slot's attempts in order, from 0 up to and including the first unclaimed
// one (or every one). `node`: this node's name.
SlotDecision DecideSlot(const std::vector<AttemptState>& attempts, std::string_view node,
                        int64_t now_ms, std::chrono::seconds claim_timeout, int max_attempts);

// The kind a failed attempt is counted under (replication::kBackupFailureKinds): by the
// store's own error when a store call failed during the attempt (permission → store_denied,
// no space → store_full, unavailable/timeout → store_unreachable, corruption → verify),
// else by the attempt's error (a read-back mismatch → verify, anything else → source).
std::string_view BackupFailureKind(const Status& failure, const std::optional<Status>& store_error);

// --- the service ---------------------------------------------------------------------

class BackupScheduler {
 public:
  // `from`: this node's own backup server. `server` must outlive the scheduler. kInvalidArgument
  // for a schedule that does not parse or a store that cannot be opened; a schedule "off" is
  // not an error here (the caller does not start one).
  static Result<std::unique_ptr<BackupScheduler>> Create(const NodeSettings& settings,
                                                         clone::Endpoint from, api::Server& server);
  ~BackupScheduler();  // Stop()
  BackupScheduler(const BackupScheduler&) = delete;
  BackupScheduler& operator=(const BackupScheduler&) = delete;

  void Start();
  // Cancels a backup in progress (it leaves no manifest) and joins. Idempotent.
  void Stop();

  struct Impl;

 private:
  explicit BackupScheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::jthread thread_;
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_BACKUP_SCHEDULER_H_
