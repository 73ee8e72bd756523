// The live binlog archiver inside `replboot run` (archive.binlog): one node at a time streams
// the primary's binlog over a replication connection (db/binlog_stream.h), cuts it into
// segments of whole transactions (binlog/cutter.h) and hands each, in order, to the store side
// (archive/binlog_archive.h: sealed, named by GTID range, under the primary's history).
//
// One archiver at a time: the lease (in the store, binlog-lease/).
//   binlog-lease/epoch-<N:020>        written with PutIfAbsent by the node that takes epoch N:
//                                     of nodes racing for N exactly one wins; the newest epoch
//                                     holds the lease
//   binlog-lease/epoch-<N:020>.beat   overwritten by the holder every lease_timeout/3 (a
//                                     counter), so the others see it is alive
// Every node reads the newest epoch and its beat every few seconds. A lease whose beat this
// node has seen unchanged, through reads that succeeded (a store this node cannot read tells
// it nothing), for archive.binlog_lease_timeout is the lease of a dead (or cut off) holder.
// Who may then take epoch N+1 (DecideLease, pure):
//
//   this node                      may take the lease once it has been stale for
//   not ready                      never
//   holds it (this process)        - (it archives)
//   its own epoch, from before a   at once: this node was restarted, its old archiver is dead
//     restart (the node's name)
//   replica mysql-k                timeout + (k-1) × step    (step = lease_timeout / 3): the
//                                  replicas first, by ordinal, so the primary serves writes
//   primary                        timeout + 4 × step: only when no replica took it
//   no lease in the store yet      the same turns, without the timeout
//
// Fencing: before every segment upload the holder checks that epoch N+1 does not exist; when
// it does, another node took over and this one stops at once (event=binlog_archiver_fenced).
// A holder stalled between that check and its upload can still put one segment after the
// takeover; the new holder starts from the store's newest segment, so the two overlap or
// repeat a range: harmless, because a segment is named by its exact GTID range and the same
// range holds the same transactions (the store side keeps one, and the chain check follows
// start → end positions, so an overlapping segment with the same transactions adds nothing).
//
// Where a chain starts: the end position of the newest segment of the primary's history (the
// full @@gtid_binlog_state sealed in it), else the newest complete backup's position, else the
// primary's @@gtid_binlog_state now (a new chain: logged, event=binlog_archive_new_chain).
// A position the primary no longer has binlogs for (error 1236: purged) is a gap: counted
// (replboot_binlog_archive_gaps_total, the gap gauge), in /status and the log
// (event=binlog_archive_gap), a backup is requested at once from this node's backup server,
// and archiving goes on from the primary's current state (the new chain that backup starts).
#ifndef REPLBOOT_DAEMON_BINLOG_ARCHIVER_H_
#define REPLBOOT_DAEMON_BINLOG_ARCHIVER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "replboot/binlog/segment.h"
#include "replboot/base/status.h"
#include "replboot/db/binlog_stream.h"
#include "replboot/replication/health.h"
#include "replboot/store/object_store.h"

namespace replboot::daemon {

// --- the lease rule (pure) -------------------------------------------------------------

struct LeaseInput {
  bool ready = false;
  bool primary = false;
  int64_t ordinal = 0;
  std::string node;  // this node's name
  // The newest epoch in the store and its node; 0 / "" when none.
  uint64_t epoch = 0;
  std::string holder;
  bool held_here = false;  // `epoch` is this process's own
  // How long this node has seen the newest epoch and its beat unchanged (or the store without
  // a lease), through reads that succeeded.
  std::chrono::milliseconds unchanged_for{0};
  std::chrono::seconds timeout{30};
};

struct LeaseDecision {
  bool take = false;
  std::chrono::milliseconds after{0};  // how long stale before this node may take it
  std::string reason;                  // in words, for /status and the log
};
LeaseDecision DecideLease(const LeaseInput& input);

// Keys of the lease (binlog-lease/epoch-<N:020>[.beat]); ParseEpochKey: strict, nullopt for
// anything else (a beat, a stranger's key).
std::string LeaseEpochKey(uint64_t epoch);
std::string LeaseBeatKey(uint64_t epoch);
std::optional<uint64_t> ParseEpochKey(std::string_view key);

// --- the lag over a window -------------------------------------------------------------

// Lags of sealed transactions over a sliding window (by the time they were sealed), for the
// p50/p99 of /status and /metrics. Bounded: at most `max_samples`, the oldest dropped first.
class LagWindow {
 public:
  explicit LagWindow(std::chrono::seconds window, size_t max_samples = 200'000)
      : window_(window), max_(max_samples) {}
  void Add(int64_t sealed_at_ms, double lag_seconds);
  struct Stats {
    uint64_t count = 0;
    double p50 = 0, p99 = 0, max = 0;
  };
  Stats Compute(int64_t now_ms);
  std::chrono::seconds window() const { return window_; }

 private:
  std::chrono::seconds window_;
  size_t max_;
  std::vector<std::pair<int64_t, double>> samples_;  // in order of sealing
  size_t head_ = 0;                                   // samples_[head_..] are live
};

// --- the service ---------------------------------------------------------------------

// What the archiver needs, each a seam the tests fill with fakes.
struct BinlogArchiverDeps {
  // The store the lease lives in (the archive's own store).
  store::ObjectStore* lease_store = nullptr;
  // The store side: seal and upload one segment (its key), and the full end position of the
  // newest segment of a history (nullopt when it has none).
  std::function<Result<std::string>(const binlog::BinlogSegment&)> put_segment;
  std::function<Result<std::optional<std::string>>(const std::string& history)> newest_end_state;
  // The primary: its history (SELECT id FROM replboot.history), its @@gtid_binlog_state, and a
  // replication connection from a position (one GTID per domain).
  std::function<Result<std::string>()> primary_history;
  std::function<Result<std::string>()> primary_binlog_state;
  std::function<Result<std::unique_ptr<db::BinlogStream>>(const std::string& connect_position)>
      open_stream;
  // The newest complete backup's GTID position (nullopt when there is none).
  std::function<Result<std::optional<std::string>>()> backup_position;
  // Starts a backup now, to begin a new chain after a gap (returns at once; `done` is called
  // with its id and result when it ends).
  std::function<void(std::function<void(const std::string& id, const Status& result)> done)>
      request_backup;
  // This node's readiness (/ready).
  std::function<bool()> ready;
};

struct BinlogArchiverOptions {
  std::string node;  // this node's name, mysql-N
  int64_t ordinal = 0;
  bool primary = false;
  std::chrono::milliseconds seal_interval{2000};
  uint64_t seal_bytes = 16u << 20;
  uint64_t max_transaction_bytes = 64u << 20;
  std::chrono::seconds lease_timeout{30};
  std::chrono::milliseconds poll{0};  // how often the lease is read; 0 = lease_timeout / 10, 1..5 s
  std::chrono::seconds lag_window{300};
};

class BinlogArchiver {
 public:
  BinlogArchiver(BinlogArchiverOptions options, BinlogArchiverDeps deps,
                 replication::BinlogArchiveStatus& status);
  ~BinlogArchiver();  // Stop()
  BinlogArchiver(const BinlogArchiver&) = delete;
  BinlogArchiver& operator=(const BinlogArchiver&) = delete;

  void Start();
  // Seals what is whole, stops streaming and joins. Idempotent.
  void Stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::jthread thread_;
};

}  // namespace replboot::daemon

#endif  // REPLBOOT_DAEMON_BINLOG_ARCHIVER_H_
